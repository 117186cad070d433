// A small hand-written SVG line chart: a grid of panels sharing axes and a legend.
#ifndef LATPRED_BENCH_SVG_H_
#define LATPRED_BENCH_SVG_H_

#include <string>
#include <vector>

namespace latpred::bench {

struct SvgSeries {
  std::string label;
  std::string color;      // any SVG colour, e.g. "#1f77b4"
  std::vector<double> x;  // points; NaN y breaks the line
  std::vector<double> y;
  std::vector<double> err;  // optional +-error bar per point (same size as y, or empty)
  bool dashed = false;
};

// A single marked point (e.g. a published figure).
struct SvgMarker {
  std::string label;
  std::string color;
  double x = 0;
  double y = 0;
};

struct SvgPanel {
  std::string title;
  std::vector<SvgSeries> series;
  std::vector<SvgMarker> markers;
};

struct SvgChart {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<double> x_ticks;  // also the x range (first..last)
  bool log_x = true;            // place x on a log scale
  double y_min = 0;
  double y_max = 1;
  double y_step = 0.2;
  int columns = 4;
  std::vector<SvgPanel> panels;
};

// The chart as a standalone SVG document.
std::string RenderSvg(const SvgChart& chart);

// Text escaped for XML character data and attribute values.
std::string XmlEscape(const std::string& text);

}  // namespace latpred::bench

#endif  // LATPRED_BENCH_SVG_H_
