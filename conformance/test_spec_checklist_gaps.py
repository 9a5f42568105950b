"""Checklist rows (conformance/CHECKLIST.md) that had no real-container test yet."""


def test_console_size_is_ignored_without_a_terminal(runtime, bundle):
    # config.md "consoleSize": MUST be ignored when terminal is false or unset
    bundle.process["terminal"] = False
    bundle.process["consoleSize"] = {"height": 24, "width": 80}
    assert runtime.sh(bundle, "test -t 0 || echo notty").split() == ["notty"]


def test_mount_type_is_seen_in_mountinfo(runtime, bundle):
    # config.md "mounts[].type": the filesystem type shows in the fstype column
    bundle.config["mounts"].append({"destination": "/spec-tmp", "type": "tmpfs", "source": "tmpfs"})
    out = runtime.sh(bundle, "grep ' /spec-tmp ' /proc/self/mountinfo")
    assert " - tmpfs " in out


def test_features_versions_and_hooks_are_accepted(runtime, bundle):
    # features.md: ociVersionMin/Max MUST be accepted as config ociVersion; listed hooks exist
    import json

    features = json.loads(runtime.run("features").stdout)
    assert "createRuntime" in features["hooks"] and "poststop" in features["hooks"]
    for version in (features["ociVersionMin"], features["ociVersionMax"]):
        bundle.config["ociVersion"] = version
        assert runtime.sh(bundle, "echo ok").split() == ["ok"]
