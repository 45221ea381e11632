import os as _os
ROOT = _os.environ.get('UDR_SOURCE_DIR', _os.path.dirname(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))))
BASE = _os.environ.get('UDR_FUZZ_DIR', '/tmp/udr-sqlfuzz')
_os.makedirs(BASE, exist_ok=True)
import os
import sys, json, shlex, subprocess
# replay.py FAILLOG NEWSTORE SUBSTR : run history into NEWSTORE up to the last command containing SUBSTR (exclusive); print it
log, new, sub = sys.argv[1], sys.argv[2], sys.argv[3]
cmds = [json.loads(l) for l in open(log).read().split('\nhistory:\n')[1].splitlines() if l.strip()]
last = max(i for i, c in enumerate(cmds) if any(sub in a for a in c))
for c in cmds[:last]:
    i = c.index('--store'); c[i+1] = new
    subprocess.run(c, capture_output=True)
c = cmds[last]; i = c.index('--store'); c[i+1] = new
print(' '.join(shlex.quote(a) for a in c))
