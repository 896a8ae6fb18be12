#!/usr/bin/env bash
# Mutation score of the core modules: how many one-token changes to a module its fast
# tests notice. A benchmark, not a test: it takes minutes per module, and a surviving
# mutant is a question to answer (a missing test, or a change that means the same thing),
# not a failure to retry. Goal and the survivors' reasons: docs/test-strength.md.
#
#   ci/bench/mutation.sh                 every module below, one after another
#   ci/bench/mutation.sh redact inputs   just these
#   MUTATION_DIR=/var/tmp/alga-mutation  where the runs happen (one copy of the tree each)
#   MUTATION_JOBS=1                      mutmut workers (the machine has 2 cores; keep 1
#                                        when anything else runs). Each mutant's tests run
#                                        in a network namespace of their own, so workers,
#                                        two modules' runs and other test runs never meet
#                                        on a port (preflight's tests hold 10250)
#
# Each module runs on its own: mutmut 3 in a copy of this tree, mutating only that module
# and running only its fast tests, then ci/bench/mutate_constants.py for its module-level
# constants, which mutmut 3 does not mutate. mutmut lives in its own venv, .venv-mutation
# (made on first use), never in .venv: its dependencies must not replace the distro's
# jsonschema and requests the appliance runs with. It sees .venv's test dependencies and
# the distro packages through a .pth file, after its own.
#
# Prints per module: mutmut's killed/total and score, the constants' killed/total, and every
# survivor (mutmut's name; `mutmut show NAME` in the run directory prints its diff).
set -euo pipefail
cd "$(dirname "$0")/../.."
checkout=$PWD
work=${MUTATION_DIR:-/var/tmp/alga-mutation}
jobs=${MUTATION_JOBS:-1}
tool=$checkout/.venv-mutation

# module: the files mutated, then the fast tests that judge them
declare -A SOURCES TESTS
SOURCES[readiness]=host/cluster/readiness.py;  TESTS[readiness]=tests/cluster/test_readiness.py
SOURCES[inputs]=host/setup/inputs.py;          TESTS[inputs]=tests/setup/test_inputs.py
SOURCES[redact]=host/support/redact.py;        TESTS[redact]=tests/bundle/test_redact.py
SOURCES[failures]=host/core/failures.py;       TESTS[failures]="tests/core/test_failures.py tests/setup/test_engine.py"
SOURCES[channel]=host/releases/channels.py;    TESTS[channel]="tests/setup/test_inputs.py tests/releases/test_channels.py"
SOURCES[grubcfg]=isobuild/grubcfg.py;          TESTS[grubcfg]=tests/isobuild/test_grubcfg.py
SOURCES[seed]=isobuild/seed.py;                TESTS[seed]="tests/isobuild/test_seed.py tests/isobuild/test_seed_golden.py"
SOURCES[releases]="host/releases/source.py host/releases/git_source.py host/releases/oci_source.py"
TESTS[releases]="tests/releases/test_oci_source.py tests/releases/test_channels.py tests/releases/test_host_release.py tests/setup/test_preflight.py tests/setup/test_release_phase.py tests/setup/test_release_phase_oci.py tests/update/test_update.py"
SOURCES[preflight]=host/setup/preflight.py;    TESTS[preflight]=tests/setup/test_preflight.py
ORDER=(readiness inputs redact failures channel grubcfg seed releases preflight)

if [ ! -x "$tool/bin/mutmut" ]; then
  /usr/bin/python3 -m venv "$tool"
  "$tool/bin/pip" install -q "mutmut>=3,<4"
fi
site=$("$tool/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
project_site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# After mutmut's own packages: .venv's test dependencies, the distro's, and the plugin that
# lets mutmut see the code tests run in child processes (ci/bench/mutmut_subprocesses.py);
# the last line starts a test's child reporting the functions it calls.
{
  printf '%s\n' "$project_site" /usr/lib/python3/dist-packages "$checkout/ci/bench"
  echo 'import os; os.environ.get("ALGA_MUTMUT_CALLS") and __import__("mutmut_subprocesses").child_reports_calls()'
} > "$site/alga-project.pth"

modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=("${ORDER[@]}")
for module in "${modules[@]}"; do
  [ -n "${SOURCES[$module]:-}" ] || { echo "unknown module $module; known: ${ORDER[*]}" >&2; exit 2; }
done

for module in "${modules[@]}"; do
  run=$work/$module
  rm -rf "$run" && mkdir -p "$run"
  # The tree as it is now (committed or not), without venvs and caches.
  git ls-files -z --cached --others --exclude-standard | grep -zv '^\.venv' | \
    xargs -0 cp --parents -t "$run/" 2>/dev/null || true
  read -ra sources <<< "${SOURCES[$module]}"
  read -ra tests <<< "${TESTS[$module]}"
  existing=()
  for test in "${tests[@]}"; do [ -e "$test" ] && existing+=("$test"); done
  {
    echo "[mutmut]"
    printf 'source_paths =\n    host\n    isobuild\n'
    printf 'only_mutate =\n'; printf '    %s\n' "${sources[@]}"
    printf 'also_copy =\n    ci\n    schemas\n    ui-static\n    units\n    docs\n'
    printf 'pytest_add_cli_args_test_selection =\n'; printf '    %s\n' "${existing[@]}"
    printf 'pytest_add_cli_args =\n    -p\n    no:cacheprovider\n    -p\n    mutmut_subprocesses\n    -x\n'
  } > "$run/setup.cfg"
  echo "==> $module: ${sources[*]} against ${existing[*]}"
  (cd "$run" && "$tool/bin/mutmut" run --max-children "$jobs" > mutmut.log 2>&1) || true
  (cd "$run" && "$tool/bin/mutmut" results --all true > results.txt 2>&1) || true
  "$tool/bin/python" - "$run/results.txt" "$module" <<'EOF'
import sys
from collections import Counter
lines = [line.strip() for line in open(sys.argv[1]) if ": " in line]
status = Counter(line.rsplit(": ", 1)[1] for line in lines)
total = sum(status.values()) - status["not checked"] - status["skipped"]
killed = status["killed"] + status["timeout"] + status["segfault"] + status["caught by type check"]
if total:
    print(f"{sys.argv[2]}: mutmut {killed}/{total} killed ({100 * killed / total:.1f} %) "
          f"{dict(status)}")
else:
    print(f"{sys.argv[2]}: mutmut has nothing to mutate (constants only)")
for line in lines:
    if line.endswith((": survived", ": no tests", ": suspicious")):
        print("   survivor", line)
EOF
  (cd "$run" && "$checkout/.venv/bin/python" "$checkout/ci/bench/mutate_constants.py" \
    "${sources[@]}" -- "${existing[@]}") || true
done
