# The summary line of scripts/test.sh, from `cargo test --no-fail-fast`'s
# output: tests passed, failed and skipped over every test binary.
#   awk -v skipped=N -v api=A -f scripts/test-summary.awk LOG
# skipped: tests that reported themselves skipped (they also count as
# passed in cargo's lines); api: schemathesis's status, counted as one test
# (-1: not run). A binary that crashed (no result line, but cargo says it did
# not exit successfully) or did not build counts as one failure, so no
# failure is ever summarised as 0.
/^test result:/ {
  for (i = 1; i <= NF; i++) {
    if ($(i+1) ~ /^passed/) p += $i
    if ($(i+1) ~ /^failed/) f += $i
    if ($(i+1) ~ /^ignored/) s += $i
  }
  if ($3 == "FAILED.") failed_results++
}
/process didn't exit successfully/ { failed_processes++ }
/^error: could not compile/ { unbuilt++ }
END {
  crashed = failed_processes - failed_results
  if (crashed > 0) f += crashed
  f += unbuilt
  if (api == 0) p += 1; else if (api > 0) f += 1
  printf "summary: %d passed, %d failed, %d skipped\n", p - skipped, f, s + skipped
}
