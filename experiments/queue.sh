#!/usr/bin/env bash
# The project's long run, resumable from what is committed under experiments/: the full ml-1m
# study (issue #17, experiments/study_ml1m_queue.sh). Gowalla (issue #15,
# experiments/gowalla_queue.sh) is complete; its steps are no longer queued.
# Start it at the beginning of a session, stop it with experiments/stop_studies.sh before the
# end (which records the part in experiments/study-ml1m/parts.md), and commit experiments/.
# Run from the repository root:
#   (nohup nice -n 15 bash experiments/queue.sh > experiments/queue.log 2>&1 &)
set -euo pipefail
bash experiments/study_ml1m_queue.sh
