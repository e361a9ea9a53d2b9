use std::os::unix::fs::MetadataExt;

use super::*;

fn p(s: &str) -> SecretPath {
    SecretPath::new(s).unwrap()
}

fn v(s: &str) -> SecretValue {
    SecretValue::from(s.to_string())
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o777
}

#[test]
fn writes_strict_modes_and_links() {
    let root = tempfile::tempdir().unwrap();
    let w = Writer::new(root.path(), FileAccess::Owner, None);
    let out = w
        .write(&[
            (p("user-info/user_secret"), v("s3cr3t")),
            (p("openai_key"), v("k")),
        ])
        .unwrap();
    assert_eq!(out, Written { files: 2, bytes: 7 });
    assert_eq!(
        fs::read(root.path().join("user-info/user_secret")).unwrap(),
        b"s3cr3t"
    );
    assert_eq!(mode(&root.path().join("user-info/user_secret")), 0o400);
    assert_eq!(mode(&root.path().join("user-info")), 0o500);
    assert_eq!(mode(&root.path().join("..data")), 0o500);
    assert!(
        fs::symlink_metadata(root.path().join("openai_key"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    let g = Writer::new(root.path(), FileAccess::Group, None);
    g.write(&[(p("a/b/c"), v("x"))]).unwrap();
    assert_eq!(mode(&root.path().join("a/b/c")), 0o440);
    assert_eq!(mode(&root.path().join("a/b")), 0o550);
}

#[test]
fn a_rewrite_replaces_the_whole_set() {
    let root = tempfile::tempdir().unwrap();
    let w = Writer::new(root.path(), FileAccess::Owner, None);
    w.write(&[(p("g/one"), v("1")), (p("old"), v("o"))])
        .unwrap();
    w.write(&[(p("g/two"), v("2"))]).unwrap();
    assert!(!root.path().join("g/one").exists());
    assert!(!root.path().join("old").exists());
    assert_eq!(fs::read(root.path().join("g/two")).unwrap(), b"2");
    let stamps: Vec<_> = fs::read_dir(root.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("..") && e.file_name() != DATA_LINK)
        .collect();
    assert_eq!(stamps.len(), 1, "the retired set is removed");
}

#[test]
fn failure_leaves_nothing_behind() {
    let root = tempfile::tempdir().unwrap();
    let w = Writer::new(root.path(), FileAccess::Owner, None);
    w.write(&[(p("keep"), v("k"))]).unwrap();
    let before: Vec<_> = fs::read_dir(root.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    // A file where another needs a directory fails mid-plan.
    let err = w
        .write(&[(p("a/b"), v("1")), (p("a/b/c"), v("2"))])
        .unwrap_err();
    assert!(matches!(err, WriteError::Conflict(_)), "{err}");
    let after: Vec<_> = fs::read_dir(root.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(before.len(), after.len(), "{before:?} vs {after:?}");
    assert_eq!(fs::read(root.path().join("keep")).unwrap(), b"k");
    assert!(!root.path().join("a").exists());
}

#[test]
fn conflicting_values_and_foreign_entries_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let w = Writer::new(root.path(), FileAccess::Owner, None);
    assert!(matches!(
        w.write(&[(p("x"), v("1")), (p("x"), v("2"))]),
        Err(WriteError::Conflict(_))
    ));
    w.write(&[(p("x"), v("1")), (p("x"), v("1"))]).unwrap();
    fs::write(root.path().join("foreign"), "mine").unwrap();
    assert!(matches!(
        w.write(&[(p("foreign"), v("1"))]),
        Err(WriteError::Occupied(_))
    ));
    // A symlink planted to escape the root is not followed or replaced.
    std::os::unix::fs::symlink("/etc", root.path().join("evil")).unwrap();
    assert!(matches!(
        w.write(&[(p("evil/passwd"), v("1"))]),
        Err(WriteError::Occupied(_))
    ));
    assert_eq!(
        fs::read_link(root.path().join("evil")).unwrap(),
        Path::new("/etc")
    );
}

#[test]
fn root_must_be_a_real_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(dir.path(), dir.path().join("link")).unwrap();
    let w = Writer::new(dir.path().join("link"), FileAccess::Owner, None);
    assert!(matches!(
        w.write(&[(p("x"), v("1"))]),
        Err(WriteError::Root { .. })
    ));
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

/// An outer directory holding `root/` and a `victim/` beside it with one file.
fn root_and_victim() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    let victim = outer.path().join("victim");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join("keep"), "precious").unwrap();
    (outer, root, victim)
}

/// Writing into `root` is refused as a `..data` problem, and neither the root nor the
/// victim changed.
fn assert_refused_untouched(root: &Path, victim: &Path) {
    let before = names(root);
    let w = Writer::new(root, FileAccess::Owner, None);
    let err = w.write(&[(p("g/k"), v("new"))]).unwrap_err();
    assert!(matches!(err, WriteError::DataLink { .. }), "{err}");
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    assert_eq!(fs::read(victim.join("keep")).unwrap(), b"precious");
    assert_eq!(names(root), before, "the root was changed");
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Another user's uid (for tests that run as root).
const OTHER_UID: u32 = 4242;

#[test]
fn stamps_have_one_form() {
    assert!(is_stamp(&new_stamp()));
    for bad in [
        "..data",
        "..",
        "../x",
        "..1_deadbeef/..",
        "..1_deadbee",
        "..1_DEADBEEF",
        "..1_deadbeef0",
        ".._deadbeef",
        "..1x_deadbeef",
        "1_deadbeef",
        "/tmp/..1_deadbeef",
    ] {
        assert!(!is_stamp(bad), "{bad}");
    }
    assert!(is_tmp_link("..data_tmp_0000abcd") && is_tmp_link("..link_tmp_ffffffff"));
    assert!(!is_tmp_link("..data_tmp_/etc") && !is_tmp_link("..data_tmp_"));
}

#[test]
fn an_absolute_data_target_is_refused() {
    let (_outer, root, victim) = root_and_victim();
    std::os::unix::fs::symlink(&victim, root.join(DATA_LINK)).unwrap();
    assert_refused_untouched(&root, &victim);
}

#[test]
fn a_dotdot_data_target_is_refused() {
    let (_outer, root, victim) = root_and_victim();
    std::os::unix::fs::symlink("../victim", root.join(DATA_LINK)).unwrap();
    assert_refused_untouched(&root, &victim);
    // A stamp-looking name behind `..` is no better.
    let (_outer, root, victim) = root_and_victim();
    fs::create_dir(root.join("..1_deadbeef")).unwrap();
    std::os::unix::fs::symlink("..1_deadbeef/../../victim", root.join(DATA_LINK)).unwrap();
    assert_refused_untouched(&root, &victim);
}

#[test]
fn a_symlinked_old_set_is_refused() {
    let (_outer, root, victim) = root_and_victim();
    let stamp = "..1700000000000000000_deadbeef";
    std::os::unix::fs::symlink(&victim, root.join(stamp)).unwrap();
    std::os::unix::fs::symlink(stamp, root.join(DATA_LINK)).unwrap();
    assert_refused_untouched(&root, &victim);
    assert_eq!(fs::read_link(root.join(stamp)).unwrap(), victim);
}

#[test]
fn an_old_set_that_is_not_our_directory_is_refused() {
    // A plain directory of another name, a file of our form, a dangling target, and
    // `..data` itself a directory.
    for (name, make) in [
        ("data-old", "dir"),
        ("..1700000000000000000_0000beef", "file"),
        ("..1700000000000000000_0000dead", "none"),
    ] {
        let (_outer, root, victim) = root_and_victim();
        match make {
            "dir" => fs::create_dir(root.join(name)).unwrap(),
            "file" => fs::write(root.join(name), "x").unwrap(),
            _ => {}
        }
        std::os::unix::fs::symlink(name, root.join(DATA_LINK)).unwrap();
        assert_refused_untouched(&root, &victim);
    }
    let (_outer, root, victim) = root_and_victim();
    fs::create_dir(root.join(DATA_LINK)).unwrap();
    assert_refused_untouched(&root, &victim);
}

#[test]
fn an_old_set_owned_by_someone_else_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let (_outer, root, victim) = root_and_victim();
    let stamp = "..1700000000000000000_deadbeef";
    fs::create_dir(root.join(stamp)).unwrap();
    fs::write(root.join(stamp).join("theirs"), "x").unwrap();
    std::os::unix::fs::chown(root.join(stamp), Some(OTHER_UID), None).unwrap();
    std::os::unix::fs::symlink(stamp, root.join(DATA_LINK)).unwrap();
    assert_refused_untouched(&root, &victim);
    assert!(root.join(stamp).join("theirs").exists());
}

#[test]
fn a_root_others_can_write_is_refused_unless_it_is_the_pod_volume() {
    if !is_root() {
        eprintln!("skipped: needs root to chown");
        return;
    }
    for (mode, want) in [
        (0o777, "world-writable"),
        (0o770, "group-writable"),
        (0o755, "owned by uid 4242"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("shared");
        fs::create_dir(&root).unwrap();
        std::os::unix::fs::chown(&root, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(mode)).unwrap();
        let w = Writer::new(&root, FileAccess::Owner, None);
        let err = w.write(&[(p("g/k"), v("1"))]).unwrap_err();
        assert!(matches!(err, WriteError::Root { .. }), "{mode:o}: {err}");
        assert!(err.to_string().contains(want), "{mode:o}: {err}");
        assert!(names(&root).is_empty(), "{mode:o}: something was written");
    }
    // The kubelet's emptyDir: root-owned (here: another owner) and 0777, accepted for
    // the plan's own mount path.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("volume");
    fs::create_dir(&root).unwrap();
    std::os::unix::fs::chown(&root, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o2777)).unwrap();
    Writer::new(&root, FileAccess::Owner, None)
        .root_policy(RootPolicy::PodVolume)
        .write(&[(p("g/k"), v("1"))])
        .unwrap();
    assert_eq!(fs::read(root.join("g/k")).unwrap(), b"1");
    // A root of our own may be shared with others: its owner decides.
    let mine = tempfile::tempdir().unwrap();
    fs::set_permissions(mine.path(), fs::Permissions::from_mode(0o777)).unwrap();
    Writer::new(mine.path(), FileAccess::Owner, None)
        .write(&[(p("g/k"), v("1"))])
        .unwrap();
}

#[test]
fn leftovers_of_an_interrupted_run_are_swept() {
    let (_outer, root, victim) = root_and_victim();
    let w = Writer::new(&root, FileAccess::Owner, None);
    w.write(&[(p("g/old"), v("o"))]).unwrap();
    // A crashed run: a staging directory with a partial set (read-only, as staged) and
    // a temporary link.
    let leftover = root.join("..1700000000000000000_0badf00d");
    fs::create_dir_all(leftover.join("g")).unwrap();
    fs::write(leftover.join("g/partial"), "half").unwrap();
    fs::set_permissions(leftover.join("g"), fs::Permissions::from_mode(0o500)).unwrap();
    fs::set_permissions(&leftover, fs::Permissions::from_mode(0o500)).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("..data_tmp_0000abcd")).unwrap();
    // Not ours to sweep: a symlink of our form (not followed, not removed) and names of
    // another form.
    let planted = root.join("..1700000000000000001_00000001");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    fs::create_dir(root.join("..other")).unwrap();

    w.write(&[(p("g/new"), v("n"))]).unwrap();
    assert!(!leftover.exists(), "the staging directory is swept");
    assert!(fs::symlink_metadata(root.join("..data_tmp_0000abcd")).is_err());
    assert_eq!(fs::read_link(&planted).unwrap(), victim);
    assert_eq!(fs::read(victim.join("keep")).unwrap(), b"precious");
    assert!(root.join("..other").is_dir());
    assert_eq!(fs::read(root.join("g/new")).unwrap(), b"n");
    let stamps = names(&root)
        .into_iter()
        .filter(|n| is_stamp(n) && fs::symlink_metadata(root.join(n)).unwrap().is_dir())
        .count();
    assert_eq!(stamps, 1, "{:?}", names(&root));
}

#[test]
fn leftovers_owned_by_someone_else_are_left_alone() {
    if !is_root() {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let theirs = root.path().join("..1700000000000000000_0badf00d");
    fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(OTHER_UID), None).unwrap();
    Writer::new(root.path(), FileAccess::Owner, None)
        .write(&[(p("k"), v("1"))])
        .unwrap();
    assert!(theirs.is_dir());
}
