// A small NB201 base model trained on the bundled HELP table, for tests that need a real
// model and not a good one. The including target defines LATPRED_DATA_DIR.
#ifndef LATPRED_TESTS_SUPPORT_SMALL_MODEL_H_
#define LATPRED_TESTS_SUPPORT_SMALL_MODEL_H_

#include <gtest/gtest.h>

#include <cstddef>
#include <memory>

#include "latpred/core/dataset.h"
#include "latpred/core/search_space.h"
#include "latpred/predictor/predictor.h"

namespace latpred::testing {

// The first `rows` architectures of every HELP device, `epochs` of training (seconds on
// 2 cores); nullptr, with a test failure, when the table cannot be read or training fails.
inline std::shared_ptr<const predictor::BaseModel> SmallNb201Model(size_t rows, int epochs) {
  auto table = core::ReadLatencyTable(LATPRED_DATA_DIR "/help/nb201_latency.csv",
                                      core::Nb201Space());
  EXPECT_TRUE(table.ok()) << table.status();
  if (!table.ok()) return nullptr;
  predictor::TrainingData data;
  data.space = &core::Nb201Space();
  data.devices = table->devices;
  for (size_t r = 0; r < rows; ++r) {
    data.archs.push_back(table->archs[r]);
    for (size_t c = 0; c < table->devices.size(); ++c) data.latency_ms.push_back(table->at(r, c));
  }
  predictor::TrainOptions options;
  options.epochs = epochs;
  options.threads = 2;
  auto model = predictor::BaseModel::Train(data, options);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

}  // namespace latpred::testing

#endif  // LATPRED_TESTS_SUPPORT_SMALL_MODEL_H_
