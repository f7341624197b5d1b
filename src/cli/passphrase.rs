//! Where key passphrases come from: a file, the environment, or the terminal.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use zeroize::Zeroizing;

/// Passphrase options shared by every command that reads or writes private keys.
#[derive(clap::Args, Debug, Clone)]
pub struct PassphraseArgs {
    /// Read the key passphrase from this file (first line). Otherwise
    /// $SWARMSITE_PASSPHRASE, otherwise a prompt on the terminal.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

impl PassphraseArgs {
    /// The passphrase to unlock `key` (asked once per call).
    pub fn read(&self, key: &Path) -> anyhow::Result<Zeroizing<String>> {
        self.get(&format!("Passphrase for {}: ", key.display()), false)
    }

    /// A passphrase for new keys (asked twice on a terminal).
    pub fn new_passphrase(&self) -> anyhow::Result<Zeroizing<String>> {
        self.get("Passphrase for the new keys: ", true)
    }

    fn get(&self, prompt: &str, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
        let pass = if let Some(file) = &self.passphrase_file {
            let text = Zeroizing::new(
                std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?,
            );
            Zeroizing::new(text.lines().next().unwrap_or("").to_string())
        } else if let Ok(env) = std::env::var("SWARMSITE_PASSPHRASE") {
            Zeroizing::new(env)
        } else {
            let first = Zeroizing::new(
                rpassword::prompt_password(prompt)
                    .context("no passphrase: use --passphrase-file or $SWARMSITE_PASSPHRASE when there is no terminal")?,
            );
            if confirm {
                let again = Zeroizing::new(rpassword::prompt_password("Again: ")?);
                if *again != *first {
                    bail!("the passphrases differ");
                }
            }
            first
        };
        if pass.is_empty() {
            bail!("the passphrase is empty");
        }
        Ok(pass)
    }
}
