// The parts of a device head: each a model of how a device's log latency depends on the
// architecture, with a grid of priors, scored on the samples in closed form. Each part's
// model is stated in its own file; Combine (combine.h) averages their candidates.
#ifndef LATPRED_PREDICTOR_PARTS_H_
#define LATPRED_PREDICTOR_PARTS_H_

#include <memory>
#include <vector>

#include "adapt_context.h"

namespace latpred::predictor {

class Part {
 public:
  virtual ~Part() = default;
  // Its name in AdaptOptions::disabled_parts and in the bench.
  virtual const char* name() const = 0;
  // Its prior mass against a part of mass 1; Combine shares it among its settings.
  virtual double Mass(const AdaptContext&) const { return 1; }
  // Appends a candidate per prior setting the samples allow.
  virtual void Score(const AdaptContext& ctx, std::vector<Candidate>* out) const = 0;
};

// Whether the count sums' larger prior mass holds: a space whose positions are
// interchangeable (nb201), the additive part on, and as many samples as the sum's terms.
bool CountSumsHold(const AdaptContext& ctx);

std::unique_ptr<Part> MakeEmbeddingPart();       // part_embedding.cc
std::unique_ptr<Part> MakeAdditivePart();        // part_additive.cc
std::unique_ptr<Part> MakeAdditiveCostsPart();   // part_additive_costs.cc
std::unique_ptr<Part> MakeSourceAdditivePart();  // part_source_additive.cc
std::unique_ptr<Part> MakeDescriptorPart();      // part_descriptor.cc

// The enabled parts of options, in PartNames() order.
std::vector<std::unique_ptr<Part>> MakeParts(const AdaptOptions& options);

}  // namespace latpred::predictor

#endif  // LATPRED_PREDICTOR_PARTS_H_
