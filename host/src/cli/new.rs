//! `rustmq-etl new`: scaffolds a transform module from `guest-template/`, offline.
//! The template's files (and the broker's `wit/etl.wit`) are compiled into the binary,
//! so the scaffold always matches the world this broker runs; the package is renamed
//! and the project is a standalone crate (its own `[workspace]`) that builds with
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

/// The files written, relative to the project directory, and whether the package
/// name is substituted in them. The logic files keep their text: they are the
/// deployment guide's processor, which the user then edits.
const FILES: [(&str, &str, bool); 8] = [
    (
        "Cargo.toml",
        include_str!("../../../guest-template/Cargo.toml"),
        true,
    ),
    (
        "Cargo.lock",
        include_str!("../../../guest-template/Cargo.lock"),
        true,
    ),
    (
        "README.md",
        include_str!("../../../guest-template/README.md"),
        true,
    ),
    (
        ".gitignore",
        include_str!("../../../guest-template/.gitignore"),
        false,
    ),
    (
        "src/lib.rs",
        include_str!("../../../guest-template/src/lib.rs"),
        false,
    ),
    (
        "src/processor.rs",
        include_str!("../../../guest-template/src/processor.rs"),
        false,
    ),
    (
        "src/export.rs",
        include_str!("../../../guest-template/src/export.rs"),
        false,
    ),
    ("wit/etl.wit", include_str!("../../../wit/etl.wit"), false),
];

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
rustmq:etl/etl@1.0.0 world: edit src/processor.rs. Needs no network; building does
(crates.io, for wit-bindgen and serde_json).")]
pub struct NewArgs {
    /// The package name: letters, digits, `-` and `_`, starting with a letter.
    pub name: String,
    /// Where to create the project [default: ./NAME]. Must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
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
    let snake = args.name.replace('-', "_");
    let template_snake = TEMPLATE_NAME.replace('-', "_");
    for (relative, text, rename) in FILES {
        let path = dir.join(relative);
        let text = if rename {
            text.replace(TEMPLATE_NAME, &args.name)
                .replace(&template_snake, &snake)
        } else {
            text.to_string()
        };
        write(&path, &text)?;
    }
    Ok(dir)
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
        };
        let dir = scaffold(&args).unwrap();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"my-transform\""), "{manifest}");
        assert!(manifest.contains("[workspace]"));
        let lock = std::fs::read_to_string(dir.join("Cargo.lock")).unwrap();
        assert!(lock.contains("name = \"my-transform\""));
        assert!(!lock.contains("message-processor"));
        assert!(dir.join("wit/etl.wit").is_file());
        assert!(dir.join("src/processor.rs").is_file());
        assert!(matches!(scaffold(&args), Err(CliError::Usage(_))));
    }
}
