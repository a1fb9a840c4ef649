//! SIGTERM and SIGINT as a stream: the first asks for a graceful shutdown,
//! a second (an impatient operator, or a kubelet past its grace period)
//! ends the process at once.

use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::warn;

/// Which signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// SIGTERM (Kubernetes stopping the pod).
    Terminate,
    /// SIGINT (Ctrl-C).
    Interrupt,
}

impl Received {
    /// The signal's name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Received::Terminate => "SIGTERM",
            Received::Interrupt => "SIGINT",
        }
    }

    /// The exit status of a process ended by this signal, as shells report
    /// it: 128 + the signal number.
    pub fn exit_code(self) -> u8 {
        match self {
            Received::Terminate => 128 + 15,
            Received::Interrupt => 128 + 2,
        }
    }
}

/// Both signal streams, installed once so that no signal is missed between
/// two waits.
#[derive(Debug)]
pub struct Signals {
    terminate: Option<Signal>,
    interrupt: Option<Signal>,
}

impl Signals {
    /// Installs the handlers (must run inside the runtime). A handler that
    /// cannot be installed is logged; the other still works.
    pub fn install() -> Self {
        let install = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(stream) => Some(stream),
            Err(error) => {
                warn!(%error, signal = name, "cannot watch this signal");
                None
            }
        };
        Signals {
            terminate: install(SignalKind::terminate(), "SIGTERM"),
            interrupt: install(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// The next signal.
    pub async fn next(&mut self) -> Received {
        let Signals {
            terminate,
            interrupt,
        } = self;
        let terminate = async {
            let received = match terminate.as_mut() {
                Some(stream) => stream.recv().await.is_some(),
                None => false,
            };
            if !received {
                std::future::pending::<()>().await;
            }
        };
        let interrupt = async {
            let received = match interrupt.as_mut() {
                Some(stream) => stream.recv().await.is_some(),
                None => false,
            };
            if !received {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = terminate => Received::Terminate,
            () = interrupt => Received::Interrupt,
        }
    }
}
