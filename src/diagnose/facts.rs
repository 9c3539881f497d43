//! The facts as CEL values that are shared, not copied, and that count the
//! work the rules do over them.
//!
//! The `cel` crate copies every element a comprehension visits
//! (`clone_as_boxed` on each item of `gpus.filter(...)`, `exists`, `map`),
//! and its built-in maps copy deeply: each visit of a GPU rebuilt the GPU's
//! whole map, bridge chain and BARs included (issue 15). Here every map and
//! list of the facts sits behind an `Arc`, so a copy is a reference count,
//! and strings borrow from the JSON facts for the whole evaluation.
//!
//! The wrappers present themselves to the interpreter as the built-in map
//! and list (`as_builtin`), so functions, equality and the conversion of a
//! result back to a [`cel::Value`] see nothing new. That hook is hidden in
//! the crate's docs; Cargo.lock pins the version and the tests in
//! diagnose/mod.rs exercise every operation the rules use.
//!
//! Every element a comprehension visits is counted ([`Work::visited`]):
//! the scaling test asserts on that count instead of on time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cel::ExecutionError;
use cel::common::traits::{self, Adder, Container, Indexer, Iterable, Sizer, Zeroer};
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, Type,
};
use cel::common::value::{Builtin, BuiltinRef, CowVal, Val};

/// How much an evaluation did: the scaling test's measure of cost.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    /// Programs run: each `when`, each `each`, each template hole.
    pub evaluations: u64,
    /// Elements of fact lists and maps that comprehensions visited.
    pub visited: u64,
}

/// The facts as a CEL value borrowing `facts`' strings; `visits` counts
/// the elements comprehensions take from any list or map inside it.
pub fn to_val<'v>(facts: &'v serde_json::Value, visits: &Arc<AtomicU64>) -> Box<dyn Val + 'v> {
    match facts {
        serde_json::Value::Null => Box::new(CelNull),
        serde_json::Value::Bool(b) => Box::new(CelBool::from(*b)),
        // Integral numbers are `int` (CEL does not compare `int` with `uint`).
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Box::new(CelInt::from(i)),
            None => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        serde_json::Value::String(s) => Box::new(CelString::from(s.as_str())),
        serde_json::Value::Array(a) => Box::new(FactList {
            items: Arc::new(CelList::from(
                a.iter().map(|v| to_val(v, visits)).collect::<Vec<_>>(),
            )),
            visits: visits.clone(),
        }),
        serde_json::Value::Object(o) => {
            let m: std::collections::HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = o
                .iter()
                .map(|(k, v)| (CelMapKey::from(k.as_str()), to_val(v, visits)))
                .collect();
            Box::new(FactMap {
                map: Arc::new(CelMap::from(m)),
                visits: visits.clone(),
            })
        }
    }
}

/// A list of facts: a built-in list behind an `Arc`.
#[derive(Debug)]
pub struct FactList<'v> {
    items: Arc<CelList<'v>>,
    visits: Arc<AtomicU64>,
}

/// A map of facts: a built-in map behind an `Arc`.
#[derive(Debug)]
pub struct FactMap<'v> {
    map: Arc<CelMap<'v>>,
    visits: Arc<AtomicU64>,
}

/// A list's elements, counted as they are handed out.
struct CountedItems<'b, 'v> {
    items: std::slice::Iter<'b, Box<dyn Val + 'v>>,
    visits: &'b AtomicU64,
}

impl<'b, 'v: 'w, 'w> traits::Iterator<'b, 'w> for CountedItems<'b, 'v> {
    fn next(&mut self) -> Option<&'b (dyn Val + 'w)> {
        let item = self.items.next()?;
        self.visits.fetch_add(1, Ordering::Relaxed);
        Some(item.as_ref())
    }
}

/// A map's keys, counted as they are handed out.
struct CountedKeys<'b, 'v> {
    keys: std::collections::hash_map::Keys<'b, CelMapKey<'v>, Box<dyn Val + 'v>>,
    visits: &'b AtomicU64,
}

impl<'b, 'v: 'w, 'w> traits::Iterator<'b, 'w> for CountedKeys<'b, 'v> {
    fn next(&mut self) -> Option<&'b (dyn Val + 'w)> {
        let key = self.keys.next()?;
        self.visits.fetch_add(1, Ordering::Relaxed);
        Some(key.inner())
    }
}

macro_rules! shared_val {
    ($ty:ident, $field:ident, $builtin:ident, $cel_type:expr) => {
        impl<'v> Val for $ty<'v> {
            fn get_type(&self) -> &Type {
                $cel_type
            }

            fn cel_type() -> &'static Type {
                $cel_type
            }

            fn as_adder<'b, 'w>(&'b self) -> Option<&'b (dyn Adder + 'w)>
            where
                Self: 'w,
            {
                self.$field.as_adder()
            }

            fn as_container(&self) -> Option<&dyn Container> {
                Some(self)
            }

            fn as_indexer<'b, 'w>(&'b self) -> Option<&'b (dyn Indexer + 'w)>
            where
                Self: 'w,
            {
                Some(self)
            }

            fn into_indexer<'w>(self: Box<Self>) -> Option<Box<dyn Indexer + 'w>>
            where
                Self: 'w,
            {
                Some(self)
            }

            fn as_iterable<'b, 'w>(&'b self) -> Option<&'b (dyn Iterable + 'w)>
            where
                Self: 'w,
            {
                Some(self)
            }

            fn as_sizer(&self) -> Option<&dyn Sizer> {
                self.$field.as_sizer()
            }

            fn as_zeroer(&self) -> Option<&dyn Zeroer> {
                self.$field.as_zeroer()
            }

            fn equals(&self, other: &dyn Val) -> bool {
                self.$field.equals(other)
            }

            /// The point of the wrapper: a copy is a reference count.
            fn clone_as_boxed<'w>(&self) -> Box<dyn Val + 'w>
            where
                Self: 'w,
            {
                Box::new($ty {
                    $field: self.$field.clone(),
                    visits: self.visits.clone(),
                })
            }

            fn as_builtin<'b, 'w>(&'b self) -> BuiltinRef<'b, 'w>
            where
                Self: 'w,
            {
                BuiltinRef::$builtin(self.$field.as_ref())
            }

            /// Only reached when a shared value is consumed whole; copies
            /// unless this is the last reference.
            fn into_builtin<'w>(self: Box<Self>) -> Option<Builtin<'w>>
            where
                Self: 'w,
            {
                let inner = Arc::try_unwrap(self.$field).unwrap_or_else(|a| (*a).clone());
                Some(Builtin::$builtin(inner))
            }
        }

        impl<'v> Indexer for $ty<'v> {
            fn get<'b, 'w>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'w>, ExecutionError>
            where
                Self: 'w,
            {
                self.$field.get(idx)
            }

            /// An owned shared value gives up one element: copy that (a
            /// reference count for maps and lists), not the whole.
            fn steal<'w>(
                self: Box<Self>,
                idx: &dyn Val,
            ) -> Result<Box<dyn Val + 'w>, ExecutionError>
            where
                Self: 'w,
            {
                self.$field.get(idx).map(CowVal::into_owned)
            }
        }

        impl<'v> Iterable for $ty<'v> {
            fn iter<'b, 'w>(&'b self) -> Box<dyn traits::Iterator<'b, 'w> + 'b>
            where
                Self: 'w,
            {
                Box::new(self.counted())
            }
        }
    };
}

shared_val!(FactList, items, List, &cel::common::types::LIST_TYPE);
shared_val!(FactMap, map, Map, &cel::common::types::MAP_TYPE);

/// `x in list` compares with every element up to a match: counted like a
/// scan, for it is one (a rule testing each GPU against a GPU list is
/// quadratic).
impl Container for FactList<'_> {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        for item in self.items.inner() {
            self.visits.fetch_add(1, Ordering::Relaxed);
            if item.equals(value) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// `key in map` is a lookup, not a scan.
impl Container for FactMap<'_> {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        Container::contains(self.map.as_ref(), value)
    }
}

impl<'v> FactList<'v> {
    fn counted<'b>(&'b self) -> CountedItems<'b, 'v> {
        CountedItems {
            items: self.items.inner().iter(),
            visits: &self.visits,
        }
    }
}

impl<'v> FactMap<'v> {
    fn counted<'b>(&'b self) -> CountedKeys<'b, 'v> {
        CountedKeys {
            keys: self.map.inner().keys(),
            visits: &self.visits,
        }
    }
}
