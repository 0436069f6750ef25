#!/usr/bin/env bash
# The project's long runs, in order, each resumable from what is committed under experiments/:
#   1. Gowalla (issue #15): NeuMF at size 64, iALS at 256 and 1024, MF at 256
#      (experiments/gowalla_queue.sh steps 3-5; a finished step is reused in seconds);
#   2. the full ml-1m study (issue #17, experiments/study_ml1m_queue.sh).
# Start it at the beginning of a session, stop it with experiments/stop_studies.sh before the
# end, commit experiments/, and record the hours of the part (dotrec study --status).
# Run from the repository root:
#   (nohup nice -n 15 bash experiments/queue.sh > experiments/queue.log 2>&1 &)
set -euo pipefail
bash experiments/gowalla_queue.sh 3 4 5
bash experiments/study_ml1m_queue.sh
