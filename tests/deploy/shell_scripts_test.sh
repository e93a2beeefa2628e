#!/bin/bash
# shell_scripts_test.sh SOURCE_DIR: shellcheck passes on every shell script in the repository: each
# *.sh file and each file whose first line is a sh or bash shebang (e.g. .ci/run), outside build
# trees and node_modules.
set -euo pipefail
cd "$1"
command -v shellcheck >/dev/null || { echo "FAIL: shellcheck not found (apt-get install shellcheck)"; exit 1; }

scripts=()
while IFS= read -r -d '' file; do
  if [[ $file == *.sh ]] || head -n1 "$file" | grep -Eq '^#!(/usr)?/bin/(env )?(ba)?sh\b'; then
    scripts+=("$file")
  fi
done < <(find . \( -path ./.git -o -path './build*' -o -name node_modules \) -prune -o -type f -print0 | sort -z)

(( ${#scripts[@]} > 0 )) || { echo "FAIL: no shell scripts found"; exit 1; }
printf 'checking %s\n' "${scripts[@]}"
shellcheck --external-sources "${scripts[@]}"
echo "ok: shellcheck clean on ${#scripts[@]} scripts"
