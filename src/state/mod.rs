//! Server state: the in-memory model read by every request, and the single writer that
//! changes it (validate → commit → publish); `Core` opens them over a store.

pub mod core;
pub mod model;
pub mod notices;
pub mod outbox;
pub mod remote;
pub mod tx;
pub mod writer;

pub use self::core::Core;
pub use model::{Key, Model, Value};
pub use tx::Tx;
pub use writer::Writer;
