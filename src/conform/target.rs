//! The implementation under test: which side of the protocol it is ([`Role`]) and its command
//! line as given (`-- CMD [ARG...]`), checked before any case runs, so a typo is a usage error
//! (exit 2), never a failed run.

use std::path::Path;

use crate::process::Target;

/// Which side of the protocol is under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The implementation is a server; the gate connects to it as clients.
    Server,
    /// The implementation is a client; the gate is the server it connects to.
    Client,
}

impl Role {
    /// `server` or `client`, as in case IDs and the command line.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
        }
    }

    /// How messages name the implementation: `the server`, `the client`.
    pub(crate) fn who(&self) -> &'static str {
        match self {
            Role::Server => "the server",
            Role::Client => "the client",
        }
    }
}

/// Why `-- CMD [ARG...]` does not name something the gate can run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Nothing after `--`.
    #[error("needs the command to test after `--`, for example: udsping conform server -- ./my-server {{socket}}")]
    Missing,
    /// CMD is neither an executable file nor found on `PATH`.
    #[error("cannot run the target: {program:?} is not an executable file (nor found on PATH)")]
    NotExecutable {
        /// CMD as given.
        program: String,
    },
}

/// The target for `command` (CMD and its ARGs). CMD runs in a fresh directory (for each case
/// of the gate, for each server the bench starts), where a path relative to this directory
/// names nothing, so CMD, and every ARG that names an existing file here (`-- python3
/// server.py {socket}`, `--config=conf.toml`), are made absolute: they mean what they mean
/// where the command was typed. Other ARGs (`{socket}`, names, directories, sockets) are
/// passed as written.
pub fn from_command(command: &[String]) -> Result<Target, TargetError> {
    let (program, args) = command.split_first().ok_or(TargetError::Missing)?;
    let target = Target {
        program: absolute_if_file(program, |_| true),
        args: args.iter().map(|arg| absolute_argument(arg).unwrap_or_else(|| arg.clone())).collect(),
    };
    check(&target)?;
    Ok(target)
}

/// An argument of CMD that names a file or directory relative to this directory: a file is
/// passed as its absolute path (said as a note); a directory is passed as written (it may be
/// meant for the fresh directory CMD runs in), with a warning saying how to pass this one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RelativeArgument {
    /// A file here, passed as its absolute path.
    #[error(
        "CMD's argument {argument:?} names a file here; it is passed as {absolute:?} (CMD runs in a fresh directory)"
    )]
    File {
        /// The argument as given.
        argument: String,
        /// What is passed instead.
        absolute: String,
    },
    /// A directory here, passed as written.
    #[error(
        "CMD's argument {argument:?} names a directory here, but CMD runs in a fresh directory where it does not exist; to pass this one, give {absolute:?}"
    )]
    Directory {
        /// The argument as given.
        argument: String,
        /// The same directory as an absolute path.
        absolute: String,
    },
}

/// What [`from_command`] did to `command`'s arguments, and what it left that may surprise.
pub fn relative_arguments(command: &[String]) -> Vec<RelativeArgument> {
    command
        .iter()
        .skip(1)
        .filter_map(|arg| {
            if let Some(absolute) = absolute_argument(arg) {
                return Some(RelativeArgument::File { argument: arg.clone(), absolute });
            }
            let is_dir = !arg.contains("{socket}")
                && !arg.starts_with('-')
                && !matches!(arg.as_str(), "." | "..")
                && Path::new(arg.as_str()).is_relative()
                && std::fs::metadata(arg.as_str()).is_ok_and(|m| m.is_dir());
            let absolute = std::path::absolute(arg.as_str()).ok()?.to_string_lossy().into_owned();
            is_dir.then(|| RelativeArgument::Directory { argument: arg.clone(), absolute })
        })
        .collect()
}

/// `arg` made absolute, when it (or the value of `--name=value`) names an existing regular
/// file relative to the current directory.
fn absolute_argument(arg: &str) -> Option<String> {
    if arg.contains("{socket}") {
        return None;
    }
    let is_file = |path: &str| std::fs::metadata(path).is_ok_and(|m| m.is_file());
    if let Some((name, value)) = arg.split_once('=').filter(|(name, _)| name.starts_with('-')) {
        let absolute = absolute_if_file(value, is_file);
        return (absolute != value).then(|| format!("{name}={absolute}"));
    }
    if arg.starts_with('-') {
        return None;
    }
    let absolute = absolute_if_file(arg, is_file);
    (absolute != arg).then_some(absolute)
}

/// Checks that the target's program can be started.
pub(crate) fn check(target: &Target) -> Result<(), TargetError> {
    target.check().map_err(|_| TargetError::NotExecutable { program: target.program.clone() })
}

fn absolute_if_file(arg: &str, wanted: impl Fn(&str) -> bool) -> String {
    let path = Path::new(arg);
    if !arg.is_empty() && path.is_relative() && path.exists() && wanted(arg) {
        if let Ok(absolute) = std::path::absolute(path) {
            return absolute.to_string_lossy().into_owned();
        }
    }
    arg.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_unrunnable_command_is_refused() {
        assert_eq!(from_command(&[]).unwrap_err(), TargetError::Missing);
        let error = from_command(&["/no/such/cmd".into()]).unwrap_err();
        assert_eq!(error, TargetError::NotExecutable { program: "/no/such/cmd".into() });
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("not-executable");
        std::fs::write(&plain, "").unwrap();
        assert!(from_command(&[plain.to_string_lossy().into_owned()]).is_err());
    }

    // The natural command line: `-- python3 server.py {socket}` from the script's directory.
    #[test]
    fn a_relative_file_argument_is_passed_as_its_absolute_path() {
        // The package root is the current directory of unit tests.
        let command: Vec<String> = ["sh", "Cargo.toml", "{socket}", "-x", "--manifest=Cargo.toml", "src"]
            .into_iter()
            .map(String::from)
            .collect();
        let target = from_command(&command).unwrap();
        let absolute = std::path::absolute("Cargo.toml").unwrap().to_string_lossy().into_owned();
        assert_eq!(target.program, "sh");
        assert_eq!(
            target.args,
            [absolute.clone(), "{socket}".into(), "-x".into(), format!("--manifest={absolute}"), "src".into()]
        );
        let found = relative_arguments(&command);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].to_string().contains("is passed as"), "{}", found[0]);
        assert!(matches!(&found[2], RelativeArgument::Directory { argument, .. } if argument == "src"));
        let none = from_command(&["sh".into(), "no-such-file".into(), "/etc/hostname".into()]).unwrap();
        assert_eq!(none.args, ["no-such-file", "/etc/hostname"]);
    }

    #[test]
    fn a_relative_program_is_made_absolute() {
        // A script named relative to the current directory (the package root here).
        let dir = tempfile::Builder::new().prefix(".target-test-").tempdir_in(".").unwrap();
        let script = dir.path().join("server.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let relative = Path::new(dir.path().file_name().unwrap()).join("server.sh");
        let target = from_command(&[relative.to_string_lossy().into_owned()]).unwrap();
        assert!(Path::new(&target.program).is_absolute(), "{target:?}");
        assert_eq!(Path::new(&target.program), std::path::absolute(&relative).unwrap());
    }
}
