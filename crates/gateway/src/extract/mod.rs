//! Extractors that put a permission in a handler's signature: a handler that takes
//! [`ServiceRole`] cannot run for anyone else.

mod request_role;
mod service_role;

pub(crate) use request_role::RequestRole;
pub(crate) use service_role::ServiceRole;
