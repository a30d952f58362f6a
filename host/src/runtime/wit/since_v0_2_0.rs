//! Bindings of `presence:connector@0.2.0`, the newest contract. The host
//! works in these types; older versions convert to and from them.

wasmtime::component::bindgen!({
    path: "../wit/since_v0.2.0",
    world: "connector-plugin",
    // Host functions never block: I/O is started here and completes as events.
    // They may trap (a guest abusing a handle is a guest bug worth ending).
    imports: { default: trappable },
    // Guest calls run on fibers so the epoch deadline can interrupt them.
    exports: { default: async },
});

pub use exports::presence::connector::connector as guest;
pub use presence::connector::types;
