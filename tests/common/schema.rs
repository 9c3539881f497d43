//! Validate outputs against the committed JSON Schemas (docs/schema/*.json)
//! with boon; used by tests/schema.rs and tests/snapshots.rs.

use rigdoctor::schema::Output;
use serde_json::Value;

use super::root;

pub struct Validator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
    name: &'static str,
}

impl Validator {
    /// The committed file, compiled (so a stale file fails here too).
    pub fn new(out: Output) -> Validator {
        let text = std::fs::read_to_string(root().join(out.path())).unwrap();
        let schema: Value = serde_json::from_str(&text).unwrap();
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        let loc = format!("file:///rigdoctor/{}", out.path());
        compiler.add_resource(&loc, schema).unwrap();
        let index = compiler
            .compile(&loc, &mut schemas)
            .unwrap_or_else(|e| panic!("{}: {e}", out.path()));
        Validator {
            schemas,
            index,
            name: out.name(),
        }
    }

    pub fn accepts(&self, doc: &Value) -> bool {
        self.schemas.validate(doc, self.index).is_ok()
    }

    pub fn check(&self, what: &str, doc: &Value) {
        if let Err(e) = self.schemas.validate(doc, self.index) {
            panic!(
                "{what} does not validate against docs/schema/{}.json:\n{e:#}",
                self.name
            );
        }
    }

    pub fn check_text(&self, what: &str, text: &str) {
        let doc: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: not JSON ({e})"));
        self.check(what, &doc);
    }

    /// JSON Lines: every line on its own.
    pub fn check_lines(&self, what: &str, text: &str) -> usize {
        let mut n = 0;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            self.check_text(&format!("{what} line {}", i + 1), line);
            n += 1;
        }
        n
    }
}
