//! scripts/install-udsping, which action.yml runs to install a release binary instead of
//! building one: against a fake release in a temporary directory (an archive whose `udsping` is
//! a shell script printing its version, beside its `.sha256`), reached as a `file://` URL and as
//! a plain directory. A good checksum installs; a bad one, or a tampered archive, stops with
//! exit 1 and nothing installed; a missing archive, a ref that is no release, or an OS with no
//! archive is exit 3 (the action then runs `cargo install`). The action's own step is run too,
//! as the runner would run it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VERSION: &str = "9.8.7";
const TARGET: &str = "x86_64-unknown-linux-gnu";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-udsping")
}

fn archive_name(target: &str) -> String {
    format!("udsping-{VERSION}-{target}.tar.gz")
}

/// `dir/releases` with the archive for TARGET and its `.sha256`, as scripts/dist writes them;
/// the archive's `udsping` reports `reported` as its version.
fn release(dir: &Path, reported: &str) -> PathBuf {
    let name = format!("udsping-{VERSION}-{TARGET}");
    let stage = dir.join("stage");
    fs::create_dir_all(stage.join(&name)).unwrap();
    let binary = stage.join(&name).join("udsping");
    fs::write(&binary, format!("#!/bin/sh\necho 'udsping {reported} (SPEC.md version 1)'\n")).unwrap();
    fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).unwrap();
    let releases = dir.join("releases");
    fs::create_dir_all(&releases).unwrap();
    let archive = releases.join(archive_name(TARGET));
    let status = Command::new("tar").arg("-czf").arg(&archive).arg("-C").arg(&stage).arg(&name).status().unwrap();
    assert!(status.success(), "tar");
    let sum = Command::new("sha256sum").arg(&archive).output().unwrap();
    assert!(sum.status.success(), "sha256sum");
    let hash = String::from_utf8(sum.stdout).unwrap().split_whitespace().next().unwrap().to_string();
    fs::write(releases.join(format!("{}.sha256", archive_name(TARGET))), format!("{hash}  {}\n", archive_name(TARGET)))
        .unwrap();
    releases
}

fn install(args: &[&str], dest: &Path) -> Output {
    Command::new("sh")
        .arg(script())
        .args(args)
        .arg("--dest")
        .arg(dest)
        .env_remove("UDSPING_BASE_URL")
        .env_remove("RUNNER_OS")
        .env_remove("RUNNER_ARCH")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

#[test]
fn a_good_checksum_installs_from_a_url_and_from_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let releases = release(dir.path(), VERSION);
    for (i, base) in [file_url(&releases), releases.display().to_string()].iter().enumerate() {
        let dest = dir.path().join(format!("dest{i}"));
        let output = install(&["--version", VERSION, "--target", TARGET, "--base-url", base], &dest);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert!(stderr(&output).contains("verified"), "{}", stderr(&output));
        let run = Command::new(dest.join("bin/udsping")).arg("--version").output().unwrap();
        assert_eq!(String::from_utf8_lossy(&run.stdout), format!("udsping {VERSION} (SPEC.md version 1)\n"));
        let left: Vec<_> = fs::read_dir(dest.join("bin")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["udsping"], "only the binary, no temporary file");
    }
}

#[test]
fn a_bad_checksum_stops_it_and_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let releases = release(dir.path(), VERSION);
    let sums = releases.join(format!("{}.sha256", archive_name(TARGET)));
    let good = fs::read_to_string(&sums).unwrap();
    let flipped = if good.starts_with('0') { "1" } else { "0" };
    fs::write(&sums, format!("{flipped}{}", &good[1..])).unwrap();
    let dest = dir.path().join("dest");
    let output = install(&["--version", VERSION, "--target", TARGET, "--base-url", &file_url(&releases)], &dest);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("checksum mismatch"), "{}", stderr(&output));
    assert!(!dest.exists(), "nothing may be installed, not even the directory");

    // The same for a good .sha256 beside an archive changed after it was summed.
    fs::write(&sums, &good).unwrap();
    let archive = releases.join(archive_name(TARGET));
    let mut bytes = fs::read(&archive).unwrap();
    bytes.push(0);
    fs::write(&archive, bytes).unwrap();
    let output = install(&["--version", VERSION, "--target", TARGET, "--base-url", &file_url(&releases)], &dest);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("checksum mismatch"), "{}", stderr(&output));
    assert!(!dest.exists());

    // A .sha256 that holds no hash at all.
    fs::write(&sums, "<html>Not Found</html>\n").unwrap();
    let output = install(&["--version", VERSION, "--target", TARGET, "--base-url", &file_url(&releases)], &dest);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(!dest.exists());
}

#[test]
fn an_archive_whose_binary_is_another_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let releases = release(dir.path(), "0.0.1");
    let dest = dir.path().join("dest");
    let output = install(&["--version", VERSION, "--target", TARGET, "--base-url", &file_url(&releases)], &dest);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("not version 9.8.7"), "{}", stderr(&output));
    assert!(!dest.exists());
}

#[test]
fn no_archive_that_fits_is_exit_3_and_says_to_build_from_source() {
    let dir = tempfile::tempdir().unwrap();
    let releases = release(dir.path(), VERSION);
    let dest = dir.path().join("dest");
    let url = file_url(&releases);
    let cases: [&[&str]; 4] = [
        // No archive for this target in the release.
        &["--version", VERSION, "--target", "aarch64-unknown-linux-gnu", "--base-url", &url],
        // No such release.
        &["--version", "9.9.9", "--target", TARGET, "--base-url", &url],
        // A branch or a commit as the action's ref.
        &["--ref", "main", "--target", TARGET, "--base-url", &url],
        &["--ref", "0123456789abcdef0123456789abcdef01234567", "--target", TARGET, "--base-url", &url],
    ];
    for args in cases {
        let output = install(args, &dest);
        assert_eq!(output.status.code(), Some(3), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("build from source"), "{args:?}: {}", stderr(&output));
        assert!(!dest.exists(), "{args:?}");
    }

    // A manifest that disagrees with the ref: the checkout is not that release's.
    let manifest = dir.path().join("Cargo.toml");
    fs::write(
        &manifest,
        "[workspace.package]\nversion = \"1.0.0\"\n\n[package]\nname = \"udsping\"\nversion = \"9.8.6\"\n",
    )
    .unwrap();
    let m = manifest.to_str().unwrap();
    let output = install(&["--ref", "v9.8.7", "--manifest", m, "--target", TARGET, "--base-url", &url], &dest);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("declares version '9.8.6'"), "{}", stderr(&output));
    // refs/tags/v9.8.7 and a matching manifest install.
    fs::write(&manifest, "[package]\nname = \"udsping\"\nversion = \"9.8.7\"\n").unwrap();
    let output =
        install(&["--ref", "refs/tags/v9.8.7", "--manifest", m, "--target", TARGET, "--base-url", &url], &dest);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(dest.join("bin/udsping").exists());
}

#[test]
fn the_runner_os_and_architecture_choose_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let releases = release(dir.path(), VERSION);
    let dest = dir.path().join("dest");
    let run = |os: &str, arch: &str| {
        Command::new("sh")
            .arg(script())
            .args(["--version", VERSION, "--base-url", &file_url(&releases), "--dest"])
            .arg(&dest)
            .env("RUNNER_OS", os)
            .env("RUNNER_ARCH", arch)
            .output()
            .unwrap()
    };
    for (os, arch, says) in [
        ("macOS", "ARM64", "archives exist for Linux only"),
        ("Windows", "X64", "archives exist for Linux only"),
        ("Linux", "ARM", "x86_64 and aarch64 only"),
        ("Linux", "ARM64", "aarch64-unknown-linux-gnu.tar.gz"),
    ] {
        let output = run(os, arch);
        assert_eq!(output.status.code(), Some(3), "{os} {arch}: {}", stderr(&output));
        assert!(stderr(&output).contains(says), "{os} {arch}: {}", stderr(&output));
    }
    let output = run("Linux", "X64");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(dest.join("bin/udsping").exists());
}

/// action.yml's download step, run as the runner would: bash, its env with the `${{ }}`
/// values given here, GITHUB_OUTPUT and GITHUB_PATH files, and the release at UDSPING_BASE_URL.
fn run_download_step(action_path: &Path, action_ref: &str, base_url: &str, work: &Path) -> (Output, String, String) {
    let text = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("action.yml")).unwrap();
    let action: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let steps = action["runs"]["steps"].as_sequence().unwrap();
    let step = steps.iter().find(|s| s["id"] == "download").expect("action.yml has a step `download`");
    assert_eq!(step["shell"], "bash");
    let script = step["run"].as_str().unwrap();
    assert!(!script.contains("${{"), "the script reads the context through env only");
    let values: BTreeMap<&str, String> = [
        ("${{ github.action_path }}", action_path.display().to_string()),
        ("${{ github.action_ref }}", action_ref.to_string()),
        ("${{ github.action_repository }}", String::new()),
        ("${{ runner.tool_cache }}/udsping-release", work.join("tool-cache/udsping-release").display().to_string()),
    ]
    .into_iter()
    .collect();
    let (output_file, path_file) = (work.join("github-output"), work.join("github-path"));
    fs::write(&output_file, "").unwrap();
    fs::write(&path_file, "").unwrap();
    let mut command = Command::new("bash");
    command
        .arg("-e")
        .arg("-c")
        .arg(script)
        .env("GITHUB_OUTPUT", &output_file)
        .env("GITHUB_PATH", &path_file)
        .env("RUNNER_OS", "Linux")
        .env("RUNNER_ARCH", "X64")
        .env("UDSPING_BASE_URL", base_url);
    for (name, value) in step["env"].as_mapping().unwrap() {
        let (name, value) = (name.as_str().unwrap(), value.as_str().unwrap());
        command.env(name, values.get(value).unwrap_or_else(|| panic!("{name}: {value} is not given here")));
    }
    let output = command.output().unwrap();
    (output, fs::read_to_string(&output_file).unwrap(), fs::read_to_string(&path_file).unwrap())
}

#[test]
fn the_action_installs_the_release_of_its_ref_and_falls_back_for_a_branch() {
    let dir = tempfile::tempdir().unwrap();
    let releases = release(dir.path(), VERSION);
    // The runner's checkout of `uses: udsping/udsping@v9.8.7`.
    let action = dir.path().join("_actions/udsping/udsping/v9.8.7");
    fs::create_dir_all(action.join("scripts")).unwrap();
    fs::copy(script(), action.join("scripts/install-udsping")).unwrap();
    fs::write(action.join("Cargo.toml"), format!("[package]\nname = \"udsping\"\nversion = \"{VERSION}\"\n")).unwrap();
    let installed = dir.path().join("tool-cache/udsping-release/bin");

    // github.action_ref given, and empty (the checkout's directory names the ref).
    for action_ref in ["v9.8.7", ""] {
        let (output, outputs, paths) = run_download_step(&action, action_ref, &file_url(&releases), dir.path());
        assert!(output.status.success(), "{action_ref:?}: {}", stderr(&output));
        assert_eq!(outputs, "installed=true\n");
        assert_eq!(paths, format!("{}\n", installed.display()));
        assert!(installed.join("udsping").exists());
        fs::remove_dir_all(dir.path().join("tool-cache")).unwrap();
    }

    // A branch: no release binary, and the step succeeds so that cargo install runs.
    let (output, outputs, paths) = run_download_step(&action, "main", &file_url(&releases), dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!((outputs.as_str(), paths.as_str()), ("installed=false\n", ""));
    assert!(!installed.exists());

    // A bad checksum fails the step: no fallback that would hide it.
    let sums = releases.join(format!("{}.sha256", archive_name(TARGET)));
    let good = fs::read_to_string(&sums).unwrap();
    fs::write(&sums, good.replacen(&good[..8], "00000000", 1)).unwrap();
    let (output, outputs, paths) = run_download_step(&action, "v9.8.7", &file_url(&releases), dir.path());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!((outputs.as_str(), paths.as_str()), ("", ""));
    assert!(!installed.exists());
}

/// The release workflow builds an archive for each architecture the script maps a runner to,
/// under the name the script downloads, from the tag the action's ref names. (Skipped in the
/// published crate, which has no .github/.)
#[test]
fn the_release_workflow_builds_the_archives_the_script_downloads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/workflows/release.yml");
    let Ok(text) = fs::read_to_string(&path) else {
        eprintln!("SKIPPED: no {} here (the published crate)", path.display());
        return;
    };
    let workflow: serde_yaml::Value = serde_yaml::from_str(&text).expect("release.yml is YAML");
    assert_eq!(workflow["on"]["push"]["tags"][0], "v*", "released from tags vX.Y.Z, as action.yml's ref");
    let targets = |job: &str| -> Vec<String> {
        workflow["jobs"][job]["strategy"]["matrix"]["include"]
            .as_sequence()
            .unwrap_or_else(|| panic!("job {job} has a matrix"))
            .iter()
            .map(|row| row["target"].as_str().unwrap().to_string())
            .collect()
    };
    let archives = targets("archives");
    let dist = workflow["jobs"]["archives"]["steps"].as_sequence().unwrap();
    assert!(dist.iter().any(|s| s["run"].as_str().is_some_and(|r| r.contains("scripts/dist --target"))));
    let empty = tempfile::tempdir().unwrap();
    for arch in ["X64", "ARM64"] {
        let output = Command::new("sh")
            .arg(script())
            .args(["--version", VERSION, "--base-url", empty.path().to_str().unwrap(), "--dest"])
            .arg(empty.path().join("dest"))
            .env("RUNNER_OS", "Linux")
            .env("RUNNER_ARCH", arch)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
        let wanted = archives
            .iter()
            .find(|t| stderr(&output).contains(&format!("udsping-{VERSION}-{t}.tar.gz")))
            .unwrap_or_else(|| panic!("no archive in release.yml ({archives:?}) for {arch}: {}", stderr(&output)));
        assert!(wanted.ends_with("-linux-gnu"), "{wanted}");
    }
    let wheels = targets("wheels");
    for arch in ["x86_64", "aarch64"] {
        for libc in ["gnu", "musl"] {
            let target = format!("{arch}-unknown-linux-{libc}");
            assert!(wheels.contains(&target), "release.yml builds no wheel for {target}: {wheels:?}");
        }
    }
}
