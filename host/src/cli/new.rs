//! `rustmq-etl new`: scaffolds a transform module from `guest-template/`, offline.
//! The template's files and the guest SDK (`guest-sdk/`, which owns the WIT and the
//! bindings) are compiled into the binary, so the scaffold always matches the world
//! this broker runs. The package is renamed, the SDK is vendored into
//! `vendor/rustmq-etl-guest/` (with the batch layout crate it depends on in
//! `vendor/rustmq-etl-buffer/`) and the template's path dependency is pointed at it;
//! the project is a standalone crate (its own `[workspace]`) that builds with
//! `cargo build --target wasm32-wasip2 --release`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::CliError;

/// The template's package name, replaced by the new project's.
const TEMPLATE_NAME: &str = "message-processor";
/// The longest project name accepted (cargo has no hard limit; this keeps file names
/// and module ids sane).
pub const MAX_NAME_LEN: usize = 64;

/// Where the template's manifest finds the SDK, in the repository.
const TEMPLATE_SDK_PATH: &str = "../guest-sdk";
/// Where the new project keeps its copy of the SDK, relative to the project.
const VENDORED_SDK_PATH: &str = "vendor/rustmq-etl-guest";
/// Where the SDK's manifest finds the batch layout crate, in the repository.
const SDK_BUFFER_PATH: &str = "../batch-buffer";
/// Where the new project keeps its copy of the batch layout crate, relative to the
/// project (beside the SDK, whose manifest is pointed at it).
const VENDORED_BUFFER_PATH: &str = "vendor/rustmq-etl-buffer";

/// How a template file is adapted to the new project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adapt {
    /// Written as is: the logic files are the deployment guide's processor, which
    /// the user then edits.
    Keep,
    /// The package name replaced by the project's.
    Rename,
    /// Renamed, and the SDK path (dependency and `cargo component` metadata)
    /// pointed at the vendored copy.
    Manifest,
}

/// The template's files, relative to the project directory.
const TEMPLATE_FILES: [(&str, &str, Adapt); 6] = [
    (
        "Cargo.toml",
        include_str!("../../../guest-template/Cargo.toml"),
        Adapt::Manifest,
    ),
    (
        // Path packages carry no path in a lock file, so the template's lock stays
        // valid with the SDK vendored.
        "Cargo.lock",
        include_str!("../../../guest-template/Cargo.lock"),
        Adapt::Rename,
    ),
    (
        "README.md",
        include_str!("../../../guest-template/README.md"),
        Adapt::Rename,
    ),
    (
        ".gitignore",
        include_str!("../../../guest-template/.gitignore"),
        Adapt::Keep,
    ),
    (
        "src/lib.rs",
        include_str!("../../../guest-template/src/lib.rs"),
        Adapt::Keep,
    ),
    (
        "src/processor.rs",
        include_str!("../../../guest-template/src/processor.rs"),
        Adapt::Keep,
    ),
];

/// The guest SDK's files, relative to [`VENDORED_SDK_PATH`], written unchanged but for
/// the manifest's path to the batch layout crate. Every file the SDK's crate is built
/// from (its lock file is not: the project's is used).
const SDK_FILES: [(&str, &str); 17] = [
    ("Cargo.toml", include_str!("../../../guest-sdk/Cargo.toml")),
    ("README.md", include_str!("../../../guest-sdk/README.md")),
    (
        "wit/etl.wit",
        include_str!("../../../guest-sdk/wit/etl.wit"),
    ),
    ("src/lib.rs", include_str!("../../../guest-sdk/src/lib.rs")),
    (
        "src/context.rs",
        include_str!("../../../guest-sdk/src/context.rs"),
    ),
    (
        "src/error.rs",
        include_str!("../../../guest-sdk/src/error.rs"),
    ),
    ("src/log.rs", include_str!("../../../guest-sdk/src/log.rs")),
    (
        "src/in_place.rs",
        include_str!("../../../guest-sdk/src/in_place.rs"),
    ),
    (
        "src/message.rs",
        include_str!("../../../guest-sdk/src/message.rs"),
    ),
    (
        "src/params.rs",
        include_str!("../../../guest-sdk/src/params.rs"),
    ),
    (
        "src/state.rs",
        include_str!("../../../guest-sdk/src/state.rs"),
    ),
    (
        "src/testing.rs",
        include_str!("../../../guest-sdk/src/testing.rs"),
    ),
    (
        "src/sys/mod.rs",
        include_str!("../../../guest-sdk/src/sys/mod.rs"),
    ),
    (
        "src/sys/buffer.rs",
        include_str!("../../../guest-sdk/src/sys/buffer.rs"),
    ),
    (
        "src/sys/glue.rs",
        include_str!("../../../guest-sdk/src/sys/glue.rs"),
    ),
    (
        "src/sys/native.rs",
        include_str!("../../../guest-sdk/src/sys/native.rs"),
    ),
    (
        "src/sys/wasm.rs",
        include_str!("../../../guest-sdk/src/sys/wasm.rs"),
    ),
];

/// The batch layout crate's files (`batch-buffer/`), relative to
/// [`VENDORED_BUFFER_PATH`], written unchanged.
const BUFFER_FILES: [(&str, &str); 3] = [
    (
        "Cargo.toml",
        include_str!("../../../batch-buffer/Cargo.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../batch-buffer/src/lib.rs"),
    ),
    (
        "src/tests.rs",
        include_str!("../../../batch-buffer/src/tests.rs"),
    ),
];

/// The Python template's files, relative to the project directory, with the
/// repository paths of the SDK and the WIT pointed at the project's copies.
const PYTHON_FILES: [(&str, &str); 4] = [
    (
        "app.py",
        include_str!("../../../guest-template-python/app.py"),
    ),
    (
        "test_app.py",
        include_str!("../../../guest-template-python/test_app.py"),
    ),
    (
        "README.md",
        include_str!("../../../guest-template-python/README.md"),
    ),
    (
        "build.sh",
        include_str!("../../../guest-template-python/build.sh"),
    ),
];

/// The Python SDK, vendored into `vendor/` of a Python project.
const PYTHON_SDK_FILES: [(&str, &str); 3] = [
    (
        "vendor/rustmq_etl/__init__.py",
        include_str!("../../../guest-sdk-python/rustmq_etl/__init__.py"),
    ),
    (
        "vendor/rustmq_etl/_component.py",
        include_str!("../../../guest-sdk-python/rustmq_etl/_component.py"),
    ),
    (
        "vendor/rustmq_etl/testing.py",
        include_str!("../../../guest-sdk-python/rustmq_etl/testing.py"),
    ),
];

/// The JavaScript template's files, and the SDK (one module) beside them.
const JS_FILES: [(&str, &str); 6] = [
    ("app.js", include_str!("../../../guest-template-js/app.js")),
    (
        "component.js",
        include_str!("../../../guest-template-js/component.js"),
    ),
    (
        "test/app.test.js",
        include_str!("../../../guest-template-js/test/app.test.js"),
    ),
    (
        "README.md",
        include_str!("../../../guest-template-js/README.md"),
    ),
    (
        "build.sh",
        include_str!("../../../guest-template-js/build.sh"),
    ),
    (
        "rustmq-etl.js",
        include_str!("../../../guest-sdk-js/rustmq-etl.js"),
    ),
];

/// The contract a Python or JavaScript project builds against: the 1.1.0 WIT, as
/// released.
const PYTHON_WIT: (&str, &str) = ("wit/etl.wit", include_str!("../../../wit/1.1.0/etl.wit"));

/// The language of a new project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A crate on the Rust guest SDK, built with cargo.
    Rust,
    /// A Python module on the Python SDK, built with componentize-py.
    Python,
    /// An ES module on the JavaScript SDK, built with componentize-js.
    Js,
}

/// Arguments of `new`.
#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  rustmq-etl new my-transform
  cd my-transform
  cargo test                                    # the logic, natively
  rustup target add wasm32-wasip2               # once
  cargo build --target wasm32-wasip2 --release  # -> target/wasm32-wasip2/release/my_transform.wasm

Writes the deployment guide's message processor as a component for the
rustmq:etl/etl-buffer@1.2.0 world, written with the guest SDK (vendored into
vendor/rustmq-etl-guest): edit src/processor.rs. Needs no network; building does
(crates.io, for wit-bindgen and serde_json).

  rustmq-etl new my-transform --lang python
  cd my-transform && PYTHONPATH=vendor python3 -m unittest && ./build.sh

writes the same processor in Python (app.py) on the Python SDK (vendored into
vendor/rustmq_etl), built with componentize-py into processor.wasm.")]
pub struct NewArgs {
    /// The package name: letters, digits, `-` and `_`, starting with a letter.
    pub name: String,
    /// Where to create the project [default: ./NAME]. Must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// The language: `rust` (the default), `python` (built with componentize-py) or
    /// `js` (built with componentize-js).
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: Lang,
}

/// Checks a package name.
pub fn validate_name(name: &str) -> Result<(), String> {
    let starts_with_letter = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let allowed = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !starts_with_letter || !allowed || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "invalid project name {name:?}: use letters, digits, '-' and '_', start with a letter, at most {MAX_NAME_LEN} characters"
        ));
    }
    Ok(())
}

/// Writes the project; returns its directory.
pub fn scaffold(args: &NewArgs) -> Result<PathBuf, CliError> {
    validate_name(&args.name).map_err(CliError::Usage)?;
    let dir = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir
        .read_dir()
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false)
    {
        return Err(CliError::Usage(format!(
            "{} already exists and is not empty; choose another --path",
            dir.display()
        )));
    }
    match args.lang {
        Lang::Python => return scaffold_python(&dir),
        Lang::Js => return scaffold_js(&dir),
        Lang::Rust => {}
    }
    let snake = args.name.replace('-', "_");
    let template_snake = TEMPLATE_NAME.replace('-', "_");
    let rename = |text: &str| {
        text.replace(TEMPLATE_NAME, &args.name)
            .replace(&template_snake, &snake)
    };
    for (relative, text, adapt) in TEMPLATE_FILES {
        let text = match adapt {
            Adapt::Keep => text.to_string(),
            Adapt::Rename => rename(text),
            Adapt::Manifest => rename(text).replace(TEMPLATE_SDK_PATH, VENDORED_SDK_PATH),
        };
        write(&dir.join(relative), &text)?;
    }
    let sdk_dir = dir.join(VENDORED_SDK_PATH);
    let buffer_from_sdk = format!("../{}", VENDORED_BUFFER_PATH.trim_start_matches("vendor/"));
    for (relative, text) in SDK_FILES {
        let text = match relative {
            "Cargo.toml" => text.replace(SDK_BUFFER_PATH, &buffer_from_sdk),
            _ => text.to_string(),
        };
        write(&sdk_dir.join(relative), &text)?;
    }
    let buffer_dir = dir.join(VENDORED_BUFFER_PATH);
    for (relative, text) in BUFFER_FILES {
        write(&buffer_dir.join(relative), text)?;
    }
    Ok(dir)
}

/// A Python project: the template, the SDK in `vendor/`, the WIT in `wit/`.
fn scaffold_python(dir: &Path) -> Result<PathBuf, CliError> {
    let local = |text: &str| {
        text.replace("$here/../guest-sdk-python", "$here/vendor")
            .replace("$here/../wit/1.1.0", "$here/wit")
            .replace("../guest-sdk-python", "vendor")
    };
    for (relative, text) in PYTHON_FILES {
        write(&dir.join(relative), &local(text))?;
    }
    for (relative, text) in PYTHON_SDK_FILES.into_iter().chain([PYTHON_WIT]) {
        write(&dir.join(relative), text)?;
    }
    make_executable(&dir.join("build.sh"))?;
    Ok(dir.to_path_buf())
}

/// A JavaScript project: the template, the SDK beside it, the WIT in `wit/`.
fn scaffold_js(dir: &Path) -> Result<PathBuf, CliError> {
    for (relative, text) in JS_FILES.into_iter().chain([PYTHON_WIT]) {
        write(
            &dir.join(relative),
            &text.replace("$here/../wit/1.1.0", "$here/wit"),
        )?;
    }
    make_executable(&dir.join("build.sh"))?;
    Ok(dir.to_path_buf())
}

fn make_executable(path: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|source| {
        CliError::WriteFile {
            path: path.to_path_buf(),
            source,
        }
    })
}

fn write(path: &Path, text: &str) -> Result<(), CliError> {
    let io_error = |source| CliError::WriteFile {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_error)?;
    }
    std::fs::write(path, text).map_err(io_error)
}

/// Runs `new` and tells the user what to do next.
pub fn run(args: &NewArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let dir = scaffold(args)?;
    if args.lang == Lang::Js {
        writeln!(
            out,
            "created {name} in {dir}\n\nnext:\n  cd {dir}\n  node --test\n  npm install @bytecodealliance/componentize-js@0.23.0\n  COMPONENTIZE_JS=node_modules/.bin/componentize-js ./build.sh\n  rustmq-etl inspect processor.wasm",
            name = args.name,
            dir = dir.display(),
        )?;
        return Ok(());
    }
    if args.lang == Lang::Python {
        writeln!(
            out,
            "created {name} in {dir}\n\nnext:\n  cd {dir}\n  PYTHONPATH=vendor python3 -m unittest\n  pip install componentize-py==0.25.1\n  ./build.sh\n  rustmq-etl inspect processor.wasm",
            name = args.name,
            dir = dir.display(),
        )?;
        return Ok(());
    }
    let snake = args.name.replace('-', "_");
    writeln!(
        out,
        "created {name} in {dir}\n\nnext:\n  cd {dir}\n  cargo test\n  rustup target add wasm32-wasip2\n  cargo build --target wasm32-wasip2 --release\n  rustmq-etl inspect target/wasm32-wasip2/release/{snake}.wasm",
        name = args.name,
        dir = dir.display(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_cargo_package_names() {
        assert!(validate_name("my-transform_2").is_ok());
        assert!(validate_name("2fast").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn scaffold_renames_the_package_and_refuses_a_non_empty_directory() {
        let home = tempfile::tempdir().unwrap();
        let args = NewArgs {
            name: "my-transform".into(),
            path: Some(home.path().join("p")),
            lang: Lang::Rust,
        };
        let dir = scaffold(&args).unwrap();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"my-transform\""), "{manifest}");
        assert!(manifest.contains("[workspace]"));
        let lock = std::fs::read_to_string(dir.join("Cargo.lock")).unwrap();
        assert!(lock.contains("name = \"my-transform\""));
        assert!(lock.contains("name = \"rustmq-etl-guest\""));
        assert!(!lock.contains("message-processor"));
        assert!(dir.join("src/processor.rs").is_file());
        assert!(matches!(scaffold(&args), Err(CliError::Usage(_))));
    }

    #[test]
    fn scaffold_vendors_the_sdk_and_points_the_dependency_at_it() {
        let home = tempfile::tempdir().unwrap();
        let args = NewArgs {
            name: "my-transform".into(),
            path: Some(home.path().join("p")),
            lang: Lang::Rust,
        };
        let dir = scaffold(&args).unwrap();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains(&format!("path = \"{VENDORED_SDK_PATH}\"")),
            "{manifest}"
        );
        assert!(!manifest.contains(TEMPLATE_SDK_PATH), "{manifest}");
        let sdk = dir.join(VENDORED_SDK_PATH);
        let sdk_manifest = std::fs::read_to_string(sdk.join("Cargo.toml")).unwrap();
        assert!(sdk_manifest.contains("name = \"rustmq-etl-guest\""));
        assert!(
            sdk_manifest.contains("path = \"../rustmq-etl-buffer\""),
            "{sdk_manifest}"
        );
        assert!(!sdk_manifest.contains(SDK_BUFFER_PATH), "{sdk_manifest}");
        let wit = std::fs::read_to_string(sdk.join("wit/etl.wit")).unwrap();
        assert!(wit.contains("package rustmq:etl@1.2.0;"));
        let buffer = dir.join(VENDORED_BUFFER_PATH);
        let buffer_manifest = std::fs::read_to_string(buffer.join("Cargo.toml")).unwrap();
        assert!(buffer_manifest.contains("name = \"rustmq-etl-buffer\""));
        assert!(buffer.join("src/lib.rs").is_file());
    }

    fn files_under(root: &Path) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap();
                if name == "target" || name == "Cargo.lock" {
                    continue;
                }
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    let relative = path.strip_prefix(root).unwrap();
                    out.push(relative.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let mut on_disk = Vec::new();
        walk(root, root, &mut on_disk);
        on_disk.sort();
        on_disk
    }

    fn names(files: &[(&str, &str)]) -> Vec<String> {
        let mut names: Vec<String> = files.iter().map(|(p, _)| p.to_string()).collect();
        names.sort();
        names
    }

    /// Every file of the repository's SDK and of the batch layout crate is embedded,
    /// so that a new file there is not silently missing from scaffolded projects.
    #[test]
    fn the_embedded_sdk_is_every_file_of_guest_sdk_and_batch_buffer() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        assert_eq!(
            names(&SDK_FILES),
            files_under(&repo.join("guest-sdk")),
            "update SDK_FILES in host/src/cli/new.rs"
        );
        assert_eq!(
            names(&BUFFER_FILES),
            files_under(&repo.join("batch-buffer")),
            "update BUFFER_FILES in host/src/cli/new.rs"
        );
    }
}
