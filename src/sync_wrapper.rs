//! [`SyncWrapper`]: a value that may be shared between threads because a
//! shared reference to the wrapper gives no access to it.
//!
//! What errors carry (a refused job, a panic payload) is `Send` but need
//! not be `Sync`, while `?` into `anyhow::Error` or a boxed
//! `dyn Error + Send + Sync` needs the error to be both. The wrapper hands
//! its value out by value or through `&mut` only, so two threads holding
//! `&SyncWrapper<T>` can do nothing with `T` at the same time. It is
//! tokio's `util::sync_wrapper` (which tokio's `JoinError` keeps its
//! payload in): the `sync_wrapper` crate's type plus what that crate
//! lacks, a shared look at the value when `T` itself is `Sync`, and a
//! downcast of a panic payload to a `Sync` type, which `message()` needs.

use std::any::Any;

/// `T`, reachable only by value or `&mut` (see the module docs).
pub(crate) struct SyncWrapper<T>(T);

// SAFETY: `&SyncWrapper<T>` gives access to the `T` only where that is
// sound for any `T`: `get` needs `T: Sync`, and `downcast_ref` hands out a
// `&U` only for a `U: Sync`, after `Any::type_id`, which reads the vtable
// and never the value. Everything else takes `self` or `&mut self`.
unsafe impl<T: Send> Sync for SyncWrapper<T> {}

impl<T> SyncWrapper<T> {
    pub(crate) fn new(value: T) -> Self {
        SyncWrapper(value)
    }

    pub(crate) fn into_inner(self) -> T {
        self.0
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        &mut self.0
    }

    /// A shared look, for a value that may be shared anyway.
    pub(crate) fn get(&self) -> &T
    where
        T: Sync,
    {
        &self.0
    }
}

impl SyncWrapper<Box<dyn Any + Send>> {
    /// The payload as a `U`, if it is one; only for a `U` that may be
    /// shared, so the reference is sound whatever else the box could hold.
    pub(crate) fn downcast_ref<U: Any + Sync>(&self) -> Option<&U> {
        self.0.downcast_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::SyncWrapper;
    use std::cell::Cell;

    fn assert_sync<T: Sync>(_: &T) {}

    #[test]
    fn a_send_value_becomes_sync_and_comes_back_by_value() {
        let mut wrapped = SyncWrapper::new(Cell::new(1u8));
        assert_sync(&wrapped);
        wrapped.get_mut().set(2);
        assert_eq!(wrapped.into_inner().get(), 2);
    }

    #[test]
    fn a_payload_downcasts_only_to_its_own_type() {
        let payload: Box<dyn std::any::Any + Send> = Box::new(String::from("boom"));
        let wrapped = SyncWrapper::new(payload);
        assert_eq!(
            wrapped.downcast_ref::<String>().map(String::as_str),
            Some("boom")
        );
        assert!(wrapped.downcast_ref::<&'static str>().is_none());
    }
}
