//! How the mode is chosen, and the bubblewrap command line.

use super::*;

fn support(bwrap: bool, landlock: bool) -> Support {
    Support { bwrap: if bwrap { Ok(()) } else { Err("no bwrap".into()) }, landlock }
}

fn hidden(what: &'static str, path: &str) -> Hidden {
    Hidden { what, path: path.into() }
}

#[test]
fn auto_is_the_strongest_the_machine_has() {
    use SandboxSetting::*;
    let ws = Path::new("/srv/ws");
    let outside = [hidden("data_dir", "/srv/data")];
    let pick = |setting, bwrap, landlock, commands| {
        choose(setting, &support(bwrap, landlock), commands, ws, &outside)
    };
    assert_eq!(pick(Auto, true, true, true), Ok(SandboxMode::Bwrap));
    assert_eq!(pick(Auto, false, true, true), Ok(SandboxMode::Landlock));
    let refused = pick(Auto, false, false, true).unwrap_err();
    assert!(refused.contains("bubblewrap") && refused.contains("tools_sandbox = \"none\""));
    assert_eq!(
        pick(Auto, false, false, false),
        Ok(SandboxMode::None),
        "the default starts anywhere"
    );
    assert_eq!(pick(None, true, true, true), Ok(SandboxMode::None));
    assert!(pick(Bwrap, false, true, false).unwrap_err().contains("no bwrap"));
    assert!(pick(Landlock, true, false, true).unwrap_err().contains("landlock"));
    assert_eq!(pick(Landlock, true, true, true), Ok(SandboxMode::Landlock));
}

#[test]
fn landlock_refuses_what_it_cannot_hide() {
    let ws = Path::new("/srv/ws");
    let inside = [hidden("data_dir", "/srv/ws/.agent-gateway")];
    let both = support(true, true);
    let refused = choose(SandboxSetting::Landlock, &both, true, ws, &inside).unwrap_err();
    for named in ["data_dir", "/srv/ws/.agent-gateway", "the workspace /srv/ws", "bubblewrap"] {
        assert!(refused.contains(named), "{named}: {refused}");
    }
    let auto = choose(SandboxSetting::Auto, &support(false, true), true, ws, &inside);
    assert!(auto.unwrap_err().contains("landlock"), "auto never falls back to none");
    let in_etc = [hidden("config file", "/etc/agent-gateway.toml")];
    let refused = choose(SandboxSetting::Landlock, &both, true, ws, &in_etc).unwrap_err();
    assert!(refused.contains("config file") && refused.contains("/etc"), "{refused}");
    assert_eq!(
        choose(SandboxSetting::Landlock, &both, false, ws, &inside),
        Ok(SandboxMode::Landlock)
    );
    assert_eq!(choose(SandboxSetting::Bwrap, &both, true, ws, &inside), Ok(SandboxMode::Bwrap));
    let around = [hidden("data_dir", "/srv")];
    assert!(
        choose(SandboxSetting::Bwrap, &both, true, ws, &around).unwrap_err().contains("inside")
    );
    let root = choose(SandboxSetting::Bwrap, &both, true, Path::new("/"), &[]);
    assert!(root.unwrap_err().contains("workspace is /"));
}

#[test]
fn bwrap_binds_the_workspace_and_masks_the_gateways_files_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join(".data")).unwrap();
    std::fs::write(ws.join("gateway.toml"), "").unwrap();
    let hidden = [ws.join(".data"), ws.join("gateway.toml"), dir.path().join("elsewhere")];
    let args: Vec<String> =
        bwrap::args(&ws, &hidden).iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let line = args.join(" ");
    let ws = ws.display();
    let bind = line.find(&format!("--bind {ws} {ws}")).expect(&line);
    let tmp = line.find("--tmpfs /tmp ").expect(&line);
    let dir_mask = line.find(&format!("--tmpfs {ws}/.data --remount-ro {ws}/.data")).expect(&line);
    let file_mask = line.find(&format!("--ro-bind /dev/null {ws}/gateway.toml")).expect(&line);
    assert!(tmp < bind && bind < dir_mask && bind < file_mask, "later mounts cover: {line}");
    assert!(!line.contains("elsewhere"), "a path no bind shows needs no mask: {line}");
    for setting in ["--unshare-pid", "--unshare-user", "--die-with-parent", "--cap-drop ALL"] {
        assert!(line.contains(setting), "{setting}: {line}");
    }
    assert!(line.contains("--proc /proc") && line.ends_with(&format!("--chdir {ws}")));
    assert!(!line.contains("--unshare-net"), "the network stays shared");
}
