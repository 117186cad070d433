// Predictive intervals of a device head.
//
// Model: the log latency of an architecture the head was not fitted on is the head's
// prediction plus s * T, where s is the robust spread of the served head's
// leave-one-out log errors on its n samples (FitStats::loo_log_sd: 1.4826 times their
// median absolute value) and T is Student's t with n - 1 degrees of freedom (s is itself
// estimated from n errors). The median, not the mean square: Suggest's samples include
// extreme architectures whose leave-one-out refit extrapolates. The interval [prediction / f, prediction * f]
// with f = exp(s * t_{(1 + coverage) / 2, n - 1}) then holds `coverage` of the
// latencies. With under 10 samples a leave-one-out refit often cannot identify a part
// and the interval is a rough guide (bench/README.md gives its measured coverage).
#ifndef LATPRED_PREDICTOR_INTERVAL_H_
#define LATPRED_PREDICTOR_INTERVAL_H_

#include "latpred/predictor/predictor.h"

namespace latpred::predictor {

// f above; 0 when the head has no leave-one-out figure (fewer than 3 samples, a
// zero-shot head) or coverage is outside (0, 1).
double IntervalFactor(const FitStats& fit, double coverage);

// Quantiles: standard normal, and Student's t with nu > 0 degrees of freedom.
double NormalQuantile(double p);
double StudentQuantile(double p, double nu);

}  // namespace latpred::predictor

#endif  // LATPRED_PREDICTOR_INTERVAL_H_
