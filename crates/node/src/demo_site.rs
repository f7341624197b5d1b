//! The demo site shipped inside the binary, so `swarmsite demo` needs no files.

use std::path::Path;

const FILES: &[(&str, &str)] = &[
    ("index.html", include_str!("../../../demo/site/index.html")),
    ("about.html", include_str!("../../../demo/site/about.html")),
    ("style.css", include_str!("../../../demo/site/style.css")),
    (
        "documents/report.txt",
        include_str!("../../../demo/site/documents/report.txt"),
    ),
];

/// Writes release `version` of the demo site into `dir`. Versions differ only in the
/// front page, so an update changes one file.
pub fn write(dir: &Path, version: u32) -> std::io::Result<()> {
    for (name, text) in FILES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let news = if version > 1 {
            format!("<p class=\"news\">New in release {version}: the archive grew.</p>")
        } else {
            String::new()
        };
        let text = text
            .replace("{{VERSION}}", &version.to_string())
            .replace("{{NEWS}}", &news);
        std::fs::write(path, text)?;
    }
    Ok(())
}
