//! A slot for what the engine derives from a configuration (its compiled
//! template), kept with the configuration it came from: made on first
//! use, dropped with it, so a reloaded configuration starts afresh. The
//! slot is type-erased so that the configuration does not depend on the
//! engine.

use std::any::Any;
use std::sync::OnceLock;

/// Data derived from one configuration, made on first use.
#[derive(Default)]
pub struct Derived(OnceLock<Box<dyn Any + Send + Sync>>);

impl Derived {
    /// The derived value, made by `make` on first use; `None` if the slot
    /// already holds a value of another type (it has one user, the engine).
    pub fn get_or_init<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Option<&T> {
        self.0.get_or_init(|| Box::new(make())).downcast_ref()
    }
}

/// A copy of a configuration derives its own.
impl Clone for Derived {
    fn clone(&self) -> Self {
        Derived::default()
    }
}

/// What is derived from equal configurations is equal.
impl PartialEq for Derived {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Derived(made)"
        } else {
            "Derived(empty)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_and_not_copied() {
        let slot = Derived::default();
        assert_eq!(slot.get_or_init(|| 7u32), Some(&7));
        assert_eq!(slot.get_or_init(|| 8u32), Some(&7));
        assert_eq!(slot.get_or_init(|| "other type"), None);
        assert_eq!(slot.clone().get_or_init(|| 9u32), Some(&9));
    }
}
