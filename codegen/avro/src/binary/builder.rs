//! Test support: Avro binary built by hand, value by value.

use super::encode as e;

/// Hand-built Avro binary.
#[derive(Default)]
pub(crate) struct B(Vec<u8>);

impl B {
    pub(crate) fn new() -> B {
        B::default()
    }
    pub(crate) fn int(mut self, v: i32) -> B {
        e::int(&mut self.0, v);
        self
    }
    pub(crate) fn long(mut self, v: i64) -> B {
        e::long(&mut self.0, v);
        self
    }
    pub(crate) fn float(mut self, v: f32) -> B {
        e::float(&mut self.0, v);
        self
    }
    pub(crate) fn double(mut self, v: f64) -> B {
        e::double(&mut self.0, v);
        self
    }
    pub(crate) fn boolean(mut self, v: bool) -> B {
        e::boolean(&mut self.0, v);
        self
    }
    pub(crate) fn str(mut self, v: &str) -> B {
        e::string(&mut self.0, v);
        self
    }
    pub(crate) fn bytes(mut self, v: &[u8]) -> B {
        e::bytes(&mut self.0, v);
        self
    }
    pub(crate) fn raw(mut self, v: &[u8]) -> B {
        self.0.extend_from_slice(v);
        self
    }
    pub(crate) fn done(self) -> Vec<u8> {
        self.0
    }
}
