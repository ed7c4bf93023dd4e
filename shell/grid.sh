#!/usr/bin/env bash
# The paper's grid as shell pipelines, from one config file:
#   prepare | extract (per teacher) | shuffle-cot (table4) -> train (per cell) -> eval -> table
#   (+ the loss curves of every cell, the paper's Figure 3: RUN/loss-table3.png)
# table3: one distilled student per student x teacher;
# table4: per student x teacher, distilled / shuffled / replaced / baseline (--alpha 0).
# Cells already finished are skipped, so an interrupted grid is finished by
# running the same command again. Usage:
#   shell/grid.sh table3|table4 [CONFIG] [RUN_DIR]      (defaults: shell/grid.conf, runs/grid)
# PDC overrides the pdc command (PDC="python -m pdc").
set -euo pipefail

die() { echo "Error: $*" >&2; exit 1; }
step() { printf '== %s  (%s)\n' "$1" "$(date +%H:%M:%S)" >&2; }

TARGET=${1:-}
CONF=${2:-$(dirname "$0")/grid.conf}
RUN=${3:-runs/grid}
case $TARGET in
  table3) SETTINGS=(distilled) ;;
  table4) SETTINGS=(distilled shuffled replaced baseline) ;;
  *) echo "usage: shell/grid.sh table3|table4 [CONFIG] [RUN_DIR]" >&2; exit 2 ;;
esac
[ -f "$CONF" ] || die "config $CONF not found, pass a grid config (see shell/grid.conf)"
read -r -a PDC_CMD <<< "${PDC:-pdc}"
pdc() { "${PDC_CMD[@]}" "$@"; }

# ---------------------------------------------------------------- config
SCALARS=(data limit train valid test epochs seed beams max_new_tokens train_args)
declare -A CONF_VALUE=()
TEACHERS=(); TEACHER_ARGS=(); STUDENTS=(); STUDENT_ARGS=()
trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; s=${s%"${s##*[![:space:]]}"}; printf '%s' "$s"; }
n=0
while IFS= read -r raw || [ -n "$raw" ]; do
  n=$((n + 1))
  line=$(trim "${raw%%#*}")
  [ -z "$line" ] && continue
  [[ $line == *=* ]] || die "$CONF:$n: expected 'key = value', got '$line'"
  key=$(trim "${line%%=*}"); value=$(trim "${line#*=}")
  case $key in
    teacher.* | student.*)
      name=${key#*.}
      [[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || die "$CONF:$n: name '$name' may hold only letters, digits, '_', '.', '-'"
      [ -n "$value" ] || die "$CONF:$n: $key needs a value"
      if [[ $key == teacher.* ]]; then TEACHERS+=("$name"); TEACHER_ARGS+=("$value")
      else STUDENTS+=("$name"); STUDENT_ARGS+=("$value"); fi ;;
    *)
      [[ " ${SCALARS[*]} " == *" $key "* ]] || die "$CONF:$n: unknown key '$key', known: ${SCALARS[*]}, teacher.NAME, student.NAME"
      CONF_VALUE[$key]=$value ;;
  esac
done < "$CONF"
for key in "${SCALARS[@]}"; do
  env_name="GRID_${key^^}"
  [ -n "${!env_name:-}" ] && CONF_VALUE[$key]=${!env_name}
  [ -n "${CONF_VALUE[$key]:-}" ] || die "$CONF: key '$key' is missing"
done
for key in limit train valid test epochs seed beams max_new_tokens; do
  [[ ${CONF_VALUE[$key]} =~ ^[0-9]+$ ]] || die "$CONF: $key must be a whole number, not '${CONF_VALUE[$key]}'"
done
[ ${#TEACHERS[@]} -gt 0 ] || die "$CONF: no teacher.NAME line"
[ ${#STUDENTS[@]} -gt 0 ] || die "$CONF: no student.NAME line"

# The resolved config is the grid's provenance; a run folder holds one grid.
mkdir -p "$RUN/teachers" "$RUN/cells"
resolved=$(
  for key in "${SCALARS[@]}"; do printf '%s = %s\n' "$key" "${CONF_VALUE[$key]}"; done
  for i in "${!TEACHERS[@]}"; do printf 'teacher.%s = %s\n' "${TEACHERS[$i]}" "${TEACHER_ARGS[$i]}"; done
  for i in "${!STUDENTS[@]}"; do printf 'student.%s = %s\n' "${STUDENTS[$i]}" "${STUDENT_ARGS[$i]}"; done
)
if [ -f "$RUN/grid.conf" ]; then
  # teachers and students may be added to a grid; the data and budget may not change
  old=$(grep -v -E '^(teacher|student)\.' "$RUN/grid.conf" || true)
  new=$(grep -v -E '^(teacher|student)\.' <<< "$resolved" || true)
  [ "$old" == "$new" ] || die "$RUN was made with another data/budget config ($RUN/grid.conf), choose another run folder"
fi
printf '%s\n' "$resolved" > "$RUN/grid.conf"

# pdc extract exits 3 when some records could not be annotated: those are
# failure records, which train skips, so the grid goes on.
allow3() { "$@" || { rc=$?; [ "$rc" -eq 3 ] || return "$rc"; }; }
# finished: the file exists (written to a temporary name, renamed when its step succeeded)
finished_eval() { [ -s "$1" ] && tail -n 1 "$1" | grep -q '"summary": *true'; }

# ---------------------------------------------------------------- data, teachers
problems=$RUN/problems.jsonl
if [ ! -s "$problems" ]; then
  step "prepare: ${CONF_VALUE[data]} (limit ${CONF_VALUE[limit]})"
  read -r -a data <<< "${CONF_VALUE[data]}"
  limit=(); [ "${CONF_VALUE[limit]}" -gt 0 ] && limit=(--limit "${CONF_VALUE[limit]}")
  if [ "${data[0]}" == harvest ]; then pdc prepare --harvest "${limit[@]}" "${data[@]:1}" > "$problems.tmp"
  else pdc prepare "${limit[@]}" "${data[@]}" > "$problems.tmp"; fi
  mv "$problems.tmp" "$problems"
fi

for i in "${!TEACHERS[@]}"; do
  t=${TEACHERS[$i]}; dir=$RUN/teachers/$t; mkdir -p "$dir"
  read -r -a targs <<< "${TEACHER_ARGS[$i]}"
  if [ ! -s "$dir/cot.jsonl" ]; then
    step "extract: teacher $t (${TEACHER_ARGS[$i]})"
    # train and valid records only: the test split is never shown to a teacher
    grep -v '"split": *"test"' "$problems" | allow3 pdc extract "${targs[@]}" > "$dir/cot.jsonl.tmp"
    mv "$dir/cot.jsonl.tmp" "$dir/cot.jsonl"
  fi
  if [ "$TARGET" == table4 ]; then
    for mode in shuffle replace; do
      out=$dir/cot-${mode%e}ed.jsonl   # cot-shuffled.jsonl, cot-replaced.jsonl
      if [ ! -s "$out" ]; then
        step "shuffle-cot: teacher $t, $mode"
        pdc shuffle-cot --mode "$mode" --seed "${CONF_VALUE[seed]}" < "$dir/cot.jsonl" > "$out.tmp"
        mv "$out.tmp" "$out"
      fi
    done
  fi
done

# ---------------------------------------------------------------- cells
read -r -a train_args <<< "${CONF_VALUE[train_args]}"
evals=()
done_cells=0; skipped_cells=0
for si in "${!STUDENTS[@]}"; do
  s=${STUDENTS[$si]}
  read -r -a sargs <<< "${STUDENT_ARGS[$si]}"
  for t in "${TEACHERS[@]}"; do
    for setting in "${SETTINGS[@]}"; do
      # the run name says who is who to `pdc table` (STUDENT@TEACHER@SETTING)
      name=$s@$t@$setting; cell=$RUN/cells/$name
      evals+=("$cell/eval.jsonl")
      if finished_eval "$cell/eval.jsonl"; then
        skipped_cells=$((skipped_cells + 1)); step "skip $name: finished"; continue
      fi
      mkdir -p "$cell"
      case $setting in
        distilled) data=cot.jsonl;          weights=(--alpha 0.5 --beta 0.5) ;;
        shuffled)  data=cot-shuffled.jsonl; weights=(--alpha 0.5 --beta 0.5) ;;
        replaced)  data=cot-replaced.jsonl; weights=(--alpha 0.5 --beta 0.5) ;;
        baseline)  data=cot.jsonl;          weights=(--alpha 0 --beta 0.5) ;;
      esac
      if [ ! -f "$cell/model/pdc_config.json" ]; then
        step "train: $name"
        pdc train --student "${sargs[0]}" "${train_args[@]}" "${sargs[@]:1}" "${weights[@]}" \
          --epochs "${CONF_VALUE[epochs]}" --seed "${CONF_VALUE[seed]}" \
          --max-train-records "${CONF_VALUE[train]}" --max-valid-records "${CONF_VALUE[valid]}" \
          --out "$cell/model" --overwrite < "$RUN/teachers/$t/$data" > "$cell/train.jsonl"
      fi
      step "eval: $name"
      pdc eval --model "$cell/model" --name "$name" --beams "${CONF_VALUE[beams]}" --limit "${CONF_VALUE[test]}" \
        --max-new-tokens "${CONF_VALUE[max_new_tokens]}" < "$problems" > "$cell/eval.jsonl.tmp"
      mv "$cell/eval.jsonl.tmp" "$cell/eval.jsonl"
      done_cells=$((done_cells + 1))
    done
  done
done

# ---------------------------------------------------------------- table
step "table: $TARGET ($done_cells cells run, $skipped_cells already finished)"
for f in "${evals[@]}"; do tail -n 1 "$f"; done | pdc table --layout "$TARGET" > "$RUN/$TARGET.md.tmp"
mv "$RUN/$TARGET.md.tmp" "$RUN/$TARGET.md"
for f in "${evals[@]}"; do tail -n 1 "$f"; done | pdc table --layout "$TARGET" --format csv > "$RUN/$TARGET.csv"
for f in "${evals[@]}"; do tail -n 1 "$f"; done | pdc table --layout "$TARGET" --format latex > "$RUN/$TARGET.tex"
trains=(); for f in "${evals[@]}"; do trains+=("$(dirname "$f")/train.jsonl"); done
pdc plot-loss "${trains[@]}" --out "$RUN/loss-$TARGET.png" > "$RUN/loss-$TARGET.json"
cat "$RUN/$TARGET.md"
