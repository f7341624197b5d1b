//! The node inside the app: started in-process from the core library with the saved
//! settings, its control API on loopback; the window gets the API's address and token.

use std::path::{Path, PathBuf};

use anyhow::Context;
use swarmsite_node::control::{self, ControlInfo};
use swarmsite_node::datadir::DataDir;
use swarmsite_node::node::{Node, NodeHandle};
use swarmsite_node::settings::Settings;
use swarmsite_node::update::{Installation, Program};
use tokio_util::sync::CancellationToken;

pub struct RunningNode {
    pub handle: NodeHandle,
    pub control: ControlInfo,
    node: Node,
    cancel: CancellationToken,
}

impl RunningNode {
    /// Starts the node of `data_dir` (the platform's data folder when `None`).
    pub async fn start(data_dir: Option<&Path>) -> anyhow::Result<RunningNode> {
        // Found before anything can replace it: an update installs over this very file.
        let exe = std::env::current_exe().context("finding this program's binary")?;
        let dd = DataDir::resolve(data_dir)?;
        let settings = Settings::load(dd.root())?;
        let mut cfg = settings.node_config(&dd)?;
        // The app takes the tray app's packages (its .deb, or its plain binary), offered
        // to the user, never installed without them.
        cfg.update.program = Program::App;
        cfg.update.installation = Some(Installation::detect(&exe));
        cfg.piece_audit = Some(swarmsite_node::logging::init(
            "info,librqbit=warn,librqbit_dht=warn",
        ));
        let node = Node::start(cfg).await.context("starting the node")?;
        let handle = node.handle();
        let cancel = CancellationToken::new();
        if let Err(e) =
            control::serve(handle.clone(), settings.control_addr(), cancel.clone()).await
        {
            node.shutdown().await;
            return Err(e).context("starting the control API");
        }
        // serve() wrote the address and its fresh token there.
        let control = control::client::info(dd.root())?;
        Ok(RunningNode {
            handle,
            control,
            node,
            cancel,
        })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.handle.data_dir().to_path_buf()
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        self.node.shutdown().await;
    }
}
