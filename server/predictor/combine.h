// The one combination rule: every part's candidates averaged by posterior weight.
//
// A candidate's weight is its part's prior mass, shared equally by the part's settings,
// times its evidence: w_s = mass / settings * exp(log evidence_s). The served head
// predicts the weighted average of the candidates' log latencies, the additive
// candidates first averaged in latency (their coefficients are averaged) and entering
// with their total share (DeviceHead::add_weight). Its leave-one-out figures are that
// same average of each candidate's leave-one-out prediction, weights fixed.
#ifndef LATPRED_PREDICTOR_COMBINE_H_
#define LATPRED_PREDICTOR_COMBINE_H_

#include <vector>

#include "adapt_context.h"

namespace latpred::predictor {

struct PartCandidates {
  const char* part = "";
  double mass = 1;
  std::vector<Candidate> candidates;
};

struct Combined {
  DeviceHead head;           // with head.fit filled but for seconds and set_aside
  double log_evidence = 0;   // log p(samples) under the average
};

Combined Combine(const AdaptContext& ctx, const std::vector<PartCandidates>& parts);

}  // namespace latpred::predictor

#endif  // LATPRED_PREDICTOR_COMBINE_H_
