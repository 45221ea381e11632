"""scripts/demo.sh shows each command it runs so that it can be pasted back
into a shell: every "$ udr ..." line, read by sh, gives exactly the
arguments the demo ran (spaces, quotes, $ and " in arguments included)."""
import os
import subprocess

from conftest import SOURCE_DIR, UDR_BIN, base_env


def test_demo_commands_can_be_pasted_back(tmp_path):
    # a directory name with a space, a quote and a $ to be quoted
    top = tmp_path / "it's a $demo"
    top.mkdir()
    argv_log = tmp_path / "argv"
    env = base_env({"UDR_DEMO_BIN": UDR_BIN, "UDR_STORE": str(top / "store"),
                    "UDR_DEMO_FILES": str(top / "files"), "UDR_DEMO_ARGV": str(argv_log)})
    r = subprocess.run(["sh", str(SOURCE_DIR / "scripts" / "demo.sh")], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    shown = [line[2:] for line in out.splitlines() if line.startswith("$ ")]
    ran = []                        # the log: udr ARG... udr ARG..., each ended by \0
    for word in argv_log.read_text().split("\0")[:-1]:
        if word == "udr":
            ran.append([])
        ran[-1].append(word)
    assert len(shown) == len(ran) >= 10
    for line, args in zip(shown, ran):
        p = subprocess.run(["sh", "-c", 'eval "set -- $1"; printf "%s\\0" "$@"', "sh", line],
                           stdout=subprocess.PIPE, check=True)
        assert p.stdout.decode().split("\0")[:-1] == args, line
    assert any("'" in line for line in shown)           # quoting was needed
    # the store line can be pasted too
    export = [line for line in out.splitlines() if line.startswith("# export UDR_STORE=")]
    assert len(export) == 1
    p = subprocess.run(["sh", "-c", export[0][2:] + '; printf %s "$UDR_STORE"'],
                       stdout=subprocess.PIPE, check=True)
    assert p.stdout.decode() == str(top / "store")
    assert os.path.isdir(top / "store" / "catalog")
