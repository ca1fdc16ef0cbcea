"""The README's pre-commit snippet works as written: valid pre-commit config, no tag that does not exist, and
its hook passes on a repository of configs (dataset configs included: they were LYC003 errors)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import yaml

from conftest import EXAMPLES, ROOT, VALID_LYCORIS


def readme_pre_commit_config() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## pre-commit") :]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


def test_the_snippet_is_a_valid_config_naming_no_missing_tag(tmp_path):
    snippet = readme_pre_commit_config()
    config = yaml.safe_load(snippet)
    for repo in config["repos"]:
        rev = repo.get("rev")
        if rev is not None:  # a remote repository: the revision must exist
            found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], capture_output=True)
            assert found.returncode == 0, f"the README pins rev {rev}, which does not exist"
    path = tmp_path / ".pre-commit-config.yaml"
    path.write_text(snippet)
    done = subprocess.run([sys.executable, "-m", "pre_commit", "validate-config", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = {hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    for hook in (hook for repo in config["repos"] for hook in repo["hooks"]):
        assert hook["id"] in manifest and hook["entry"] == manifest[hook["id"]]["entry"]


def test_the_hook_passes_on_a_repository_of_configs(tmp_path):
    """pre-commit runs `entry file1 file2 ...` with every JSON file of the repository."""
    files = [EXAMPLES / "config" / "config.json", EXAMPLES / "config" / "multidatabackend.json",
             EXAMPLES / "train" / "multidatabackend.json", EXAMPLES / "flux2-lokr.lycoris.json"]
    other = tmp_path / "package.json"
    other.write_text(json.dumps({"name": "site", "dependencies": {}}))
    config = tmp_path / "my.lycoris.json"
    config.write_text(json.dumps(VALID_LYCORIS))
    hook = yaml.safe_load(readme_pre_commit_config())["repos"][0]["hooks"][0]
    command = [sys.executable, "-m", "lyco_lint", *hook["entry"].split()[1:]]
    done = subprocess.run([*command, *map(str, files), str(other), str(config)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "LYC003" not in done.stdout and "LYC004" in done.stdout  # package.json: not a config, a warning only
