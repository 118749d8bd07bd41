"""Runs record the code version: commit and dirty flag, read from git itself."""

from __future__ import annotations

import subprocess

from annealbench.runner.run.provenance import CODE_PATHS, PROJECT_ROOT, diff_sha256, environment, git_state


def test_git_state_matches_git():
    commit, dirty = git_state()
    head = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    porcelain = subprocess.run(["git", "-C", str(PROJECT_ROOT), "status", "--porcelain"],
                               capture_output=True, text=True, check=True).stdout
    assert commit == head and dirty == bool(porcelain.strip())


def test_environment_names_versions_and_hardware():
    env = environment()
    assert env["libraries"]["torch"] and env["libraries"]["pytorch-lightning"]
    assert env["cpu_count"] >= 1 and env["host"] and env["python"].count(".") == 2


def test_the_changes_hash_covers_the_code_a_run_executes_only():
    changed = subprocess.run(["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--", *CODE_PATHS],
                             capture_output=True, text=True, check=True).stdout.strip()
    digest = diff_sha256()
    assert (digest == "") == (not changed) and (digest == "" or len(digest) == 64)
    assert digest == diff_sha256()  # a function of the tree, not of the call
    env = environment()  # computed once per process, so only its shape is checked here
    assert (env["git_diff_sha256"] is None) == (not env["git_dirty"])
