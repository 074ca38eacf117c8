//! The Python and JavaScript templates (`guest-template-python/`,
//! `guest-template-js/`) built from source with their tools, once per process, for the
//! tests and the benchmarks that run them beside the Rust template.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A guest language other than Rust.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lang {
    Python,
    Js,
}

impl Lang {
    /// The template's folder, the variable its build script takes the tool from, and
    /// the tool.
    pub fn build(self) -> (&'static str, &'static str, Option<PathBuf>) {
        match self {
            Lang::Python => (
                "guest-template-python",
                "COMPONENTIZE_PY",
                crate::componentize_py(),
            ),
            Lang::Js => (
                "guest-template-js",
                "COMPONENTIZE_JS",
                crate::componentize_js(),
            ),
        }
    }
}

/// The language's template built once per process, or `None` (saying SKIPPED) when
/// its tool is not installed (`tests/run.sh` installs both).
pub fn template(lang: Lang) -> Option<&'static Path> {
    static BUILT: [OnceLock<Option<PathBuf>>; 2] = [OnceLock::new(), OnceLock::new()];
    BUILT[lang as usize]
        .get_or_init(|| {
            let (folder, var, tool) = lang.build();
            let Some(tool) = tool else {
                eprintln!(
                    "SKIPPED: the {lang:?} tool ({var}) is not installed (tests/run.sh installs it)"
                );
                return None;
            };
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
            let out =
                std::env::temp_dir().join(format!("rustmq-{folder}-{}.wasm", std::process::id()));
            let status = std::process::Command::new(root.join(folder).join("build.sh"))
                .arg(&out)
                .env(var, tool)
                .status()
                .expect("run the template's build.sh");
            assert!(status.success(), "building {folder} failed");
            Some(out)
        })
        .as_deref()
}
