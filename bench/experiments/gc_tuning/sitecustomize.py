# Experiment only (bench/run.py --sapproxy-env PYTHONPATH=bench/experiments/gc_tuning): start sapproxy with a
# much less eager cyclic GC, to test whether full collections over many live streams are what slows stream
# set-up at thousands of open streams.  Not a gateway change.
import gc

gc.set_threshold(50_000, 20, 100)
