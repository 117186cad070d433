// The twelve tasks and published figures of docs/accuracy-benchmark.md, verbatim.
#include "latpred/bench/tasks.h"

#include "absl/strings/ascii.h"

namespace latpred::bench {

const std::vector<TaskSpec>& StandardTasks() {
  static const std::vector<TaskSpec>* tasks = new std::vector<TaskSpec>{
      {"ND", "nb201",
       {"1080ti_1", "1080ti_32", "1080ti_256", "silver_4114", "silver_4210r", "samsung_a50",
        "pixel3", "essential_ph_1", "samsung_s7"},
       {"titan_rtx_256", "gold_6226", "fpga", "pixel2", "raspi4", "eyeriss"},
       PublishedFigures{0.948, 0.930, 0.959}},
      {"NA", "nb201",
       {"embedded_tpu_edge_tpu_int8", "eyeriss", "mobile_gpu_snapdragon_675_adreno_612_int8",
        "mobile_gpu_snapdragon_855_adreno_640_int8", "pixel3"},
       {"1080ti_1", "titan_rtx_32", "titanxp_1", "2080ti_32", "titan_rtx_1"},
       PublishedFigures{0.410, 0.820, 0.893}},
      {"N1", "nb201",
       {"1080ti_1", "1080ti_32", "titanx_32", "titanxp_1", "titanxp_32"},
       {"embedded_gpu_jetson_nano_fp16", "embedded_tpu_edge_tpu_int8",
        "mobile_dsp_snapdragon_675_hexagon_685_int8", "mobile_dsp_snapdragon_855_hexagon_690_int8",
        "pixel3"},
       PublishedFigures{0.604, 0.907, 0.967}},
      {"N2", "nb201",
       {"desktop_gpu_gtx_1080ti_fp32", "embedded_gpu_jetson_nano_fp16", "eyeriss",
        "mobile_dsp_snapdragon_675_hexagon_685_int8", "mobile_gpu_snapdragon_855_adreno_640_int8"},
       {"1080ti_1", "2080ti_1", "titanxp_1", "2080ti_32", "titanxp_32"},
       PublishedFigures{0.509, 0.757, 0.857}},
      {"N3", "nb201",
       {"desktop_cpu_core_i7_7820x_fp32", "embedded_gpu_jetson_nano_fp32",
        "embedded_tpu_edge_tpu_int8", "eyeriss", "mobile_cpu_snapdragon_855_kryo_485_int8",
        "mobile_dsp_snapdragon_675_hexagon_685_int8", "mobile_dsp_snapdragon_855_hexagon_690_int8",
        "mobile_gpu_snapdragon_675_adreno_612_int8", "mobile_gpu_snapdragon_855_adreno_640_int8",
        "pixel2"},
       {"1080ti_1", "2080ti_1", "titan_rtx_1"},
       PublishedFigures{0.729, 0.947, 0.962}},
      {"N4", "nb201",
       {"titan_rtx_1", "titan_rtx_32", "titanxp_1", "2080ti_1", "titanx_1", "1080ti_1",
        "titanx_32", "titanxp_32", "2080ti_32", "1080ti_32", "gold_6226", "samsung_s7",
        "silver_4114", "gold_6240", "silver_4210r", "samsung_a50", "pixel2"},
       {"eyeriss", "desktop_gpu_gtx_1080ti_fp32", "embedded_tpu_edge_tpu_int8"},
       PublishedFigures{0.746, 0.952, 0.959}},
      {"FD", "fbnet",
       {"1080ti_1", "1080ti_32", "1080ti_64", "silver_4114", "silver_4210r", "samsung_a50",
        "pixel3", "essential_ph_1", "samsung_s7"},
       {"fpga", "raspi4", "eyeriss"},
       PublishedFigures{0.910, 0.960, 0.961}},
      {"FA", "fbnet",
       {"2080ti_1", "essential_ph_1", "silver_4114", "titan_rtx_1", "titan_rtx_32"},
       {"eyeriss", "fpga", "raspi4", "samsung_a50", "samsung_s7"},
       PublishedFigures{0.370, 0.450, 0.577}},
      {"F1", "fbnet",
       {"essential_ph_1", "gold_6226", "gold_6240", "pixel3", "raspi4"},
       {"1080ti_1", "1080ti_32", "2080ti_32", "titan_rtx_1", "titanxp_1"},
       PublishedFigures{0.793, 0.756, 0.809}},
      {"F2", "fbnet",
       {"essential_ph_1", "pixel2", "pixel3", "raspi4", "samsung_s7"},
       {"1080ti_1", "1080ti_32", "2080ti_1", "titan_rtx_1", "titan_rtx_32"},
       PublishedFigures{0.543, 0.567, 0.871}},
      {"F3", "fbnet",
       {"1080ti_64", "2080ti_1", "eyeriss", "gold_6226", "gold_6240", "raspi4", "samsung_s7",
        "silver_4210r", "titan_rtx_1", "titan_rtx_32"},
       {"1080ti_1", "pixel2", "essential_ph_1"},
       PublishedFigures{0.413, 0.434, 0.814}},
      {"F4", "fbnet",
       {"1080ti_1", "1080ti_32", "1080ti_64", "2080ti_1", "2080ti_32", "2080ti_64",
        "titan_rtx_1", "titan_rtx_32", "titan_rtx_64", "titanx_1", "titanx_32", "titanx_64",
        "titanxp_1", "titanxp_32", "titanxp_64"},
       {"gold_6226", "essential_ph_1", "samsung_s7", "pixel2"},
       PublishedFigures{0.799, 0.763, 0.734}},
  };
  return *tasks;
}

const TaskSpec* FindTask(const std::string& name) {
  const std::string upper = absl::AsciiStrToUpper(name);
  for (const TaskSpec& t : StandardTasks()) {
    if (t.name == upper) return &t;
  }
  return nullptr;
}

int SourceBudget(const std::string& space) { return space == "fbnet" ? 800 : 512; }

}  // namespace latpred::bench
