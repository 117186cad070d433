#include "latpred/bench/svg.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace latpred::bench {
namespace {

constexpr double kPanelW = 250, kPanelH = 190;  // whole panel cell
constexpr double kPadL = 46, kPadR = 12, kPadT = 24, kPadB = 38;  // plot area inside a cell
constexpr double kMargin = 16, kTitleH = 30, kLegendH = 28;

std::string Num(double v) { return absl::StrFormat("%.2f", v); }

std::string Tick(double v) {
  std::string s = absl::StrFormat("%.2f", v);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s;
}

}  // namespace

std::string XmlEscape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // Control characters are not allowed in XML 1.0.
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\n' || c == '\t') out += c;
    }
  }
  return out;
}

std::string RenderSvg(const SvgChart& chart) {
  const int columns = std::max(1, chart.columns);
  const int panels = static_cast<int>(chart.panels.size());
  const int rows = std::max(1, (panels + columns - 1) / columns);
  // Wide enough for the panels, the title and the legend on one line.
  double legend_w = 10;
  {
    std::set<std::string> seen;
    for (const SvgPanel& p : chart.panels) {
      for (const SvgSeries& s : p.series) {
        if (seen.insert(s.label).second) legend_w += 40 + 6.5 * s.label.size();
      }
      for (const SvgMarker& m : p.markers) {
        if (seen.insert(m.label).second) legend_w += 40 + 6.5 * m.label.size();
      }
    }
  }
  const double width = 2 * kMargin + std::max({columns * kPanelW, legend_w,
                                               9.0 * chart.title.size()});
  const double height = 2 * kMargin + kTitleH + kLegendH + rows * kPanelH;
  const double x_lo = chart.x_ticks.empty() ? 0 : chart.x_ticks.front();
  const double x_hi = chart.x_ticks.empty() ? 1 : chart.x_ticks.back();
  auto tx = [&](double x) {
    if (chart.log_x && x_lo > 0 && x > 0) return std::log(x);
    return x;
  };
  const double tx_lo = tx(x_lo), tx_hi = tx(x_hi);
  const double y_span = chart.y_max > chart.y_min ? chart.y_max - chart.y_min : 1;
  const double plot_w = kPanelW - kPadL - kPadR, plot_h = kPanelH - kPadT - kPadB;

  std::string svg = absl::StrFormat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%s\" height=\"%s\" viewBox=\"0 0 %s %s\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n"
      "<rect x=\"0\" y=\"0\" width=\"%s\" height=\"%s\" fill=\"white\"/>\n",
      Num(width), Num(height), Num(width), Num(height), Num(width), Num(height));
  absl::StrAppend(&svg, "<text x=\"", Num(width / 2), "\" y=\"", Num(kMargin + 16),
                  "\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">",
                  XmlEscape(chart.title), "</text>\n");

  // Legend: every distinct series and marker label, in order of first appearance.
  {
    std::set<std::string> seen;
    double lx = kMargin + 10;
    const double ly = kMargin + kTitleH + 14;
    absl::StrAppend(&svg, "<g class=\"legend\">\n");
    for (const SvgPanel& p : chart.panels) {
      for (const SvgSeries& s : p.series) {
        if (!seen.insert(s.label).second) continue;
        absl::StrAppend(&svg, "<line x1=\"", Num(lx), "\" y1=\"", Num(ly - 4), "\" x2=\"",
                        Num(lx + 22), "\" y2=\"", Num(ly - 4), "\" stroke=\"",
                        XmlEscape(s.color), "\" stroke-width=\"2\"",
                        s.dashed ? " stroke-dasharray=\"5,3\"" : "", "/>\n");
        absl::StrAppend(&svg, "<circle cx=\"", Num(lx + 11), "\" cy=\"", Num(ly - 4),
                        "\" r=\"2.5\" fill=\"", XmlEscape(s.color), "\"/>\n");
        absl::StrAppend(&svg, "<text x=\"", Num(lx + 27), "\" y=\"", Num(ly), "\">",
                        XmlEscape(s.label), "</text>\n");
        lx += 40 + 6.5 * s.label.size();
      }
      for (const SvgMarker& m : p.markers) {
        if (!seen.insert(m.label).second) continue;
        absl::StrAppend(&svg, "<path d=\"M", Num(lx + 11), ",", Num(ly - 10), " l6,6 l-6,6 l-6,-6 z\" fill=\"",
                        XmlEscape(m.color), "\"/>\n");
        absl::StrAppend(&svg, "<text x=\"", Num(lx + 27), "\" y=\"", Num(ly), "\">",
                        XmlEscape(m.label), "</text>\n");
        lx += 40 + 6.5 * m.label.size();
      }
    }
    absl::StrAppend(&svg, "</g>\n");
  }

  for (int i = 0; i < panels; ++i) {
    const SvgPanel& panel = chart.panels[i];
    const double ox = kMargin + (i % columns) * kPanelW;
    const double oy = kMargin + kTitleH + kLegendH + (i / columns) * kPanelH;
    const double px = ox + kPadL, py = oy + kPadT;
    auto sx = [&](double x) {
      double f = tx_hi > tx_lo ? (tx(x) - tx_lo) / (tx_hi - tx_lo) : 0.5;
      return px + f * plot_w;
    };
    auto sy = [&](double y) {
      double c = std::clamp(y, chart.y_min, chart.y_max);
      return py + plot_h - (c - chart.y_min) / y_span * plot_h;
    };
    absl::StrAppend(&svg, "<g class=\"panel\">\n");
    absl::StrAppend(&svg, "<text x=\"", Num(px + plot_w / 2), "\" y=\"", Num(oy + 15),
                    "\" text-anchor=\"middle\" font-size=\"12\" font-weight=\"bold\">",
                    XmlEscape(panel.title), "</text>\n");
    absl::StrAppend(&svg, "<rect x=\"", Num(px), "\" y=\"", Num(py), "\" width=\"", Num(plot_w),
                    "\" height=\"", Num(plot_h), "\" fill=\"none\" stroke=\"#444\"/>\n");
    // Y grid and ticks.
    if (chart.y_step > 0) {
      for (double y = chart.y_min; y <= chart.y_max + 1e-9; y += chart.y_step) {
        absl::StrAppend(&svg, "<line x1=\"", Num(px), "\" y1=\"", Num(sy(y)), "\" x2=\"",
                        Num(px + plot_w), "\" y2=\"", Num(sy(y)),
                        "\" stroke=\"#ddd\" stroke-width=\"0.5\"/>\n");
        absl::StrAppend(&svg, "<text x=\"", Num(px - 4), "\" y=\"", Num(sy(y) + 3.5),
                        "\" text-anchor=\"end\" font-size=\"9\">", Tick(y), "</text>\n");
      }
    }
    // X ticks.
    for (double x : chart.x_ticks) {
      absl::StrAppend(&svg, "<line x1=\"", Num(sx(x)), "\" y1=\"", Num(py + plot_h), "\" x2=\"",
                      Num(sx(x)), "\" y2=\"", Num(py + plot_h + 4), "\" stroke=\"#444\"/>\n");
      absl::StrAppend(&svg, "<text x=\"", Num(sx(x)), "\" y=\"", Num(py + plot_h + 14),
                      "\" text-anchor=\"middle\" font-size=\"9\">", Tick(x), "</text>\n");
    }
    // Axis labels.
    absl::StrAppend(&svg, "<text x=\"", Num(px + plot_w / 2), "\" y=\"", Num(oy + kPanelH - 8),
                    "\" text-anchor=\"middle\" font-size=\"10\">", XmlEscape(chart.x_label),
                    "</text>\n");
    const double ly = py + plot_h / 2, lx = ox + 11;
    absl::StrAppend(&svg, "<text x=\"", Num(lx), "\" y=\"", Num(ly),
                    "\" text-anchor=\"middle\" font-size=\"10\" transform=\"rotate(-90 ", Num(lx),
                    " ", Num(ly), ")\">", XmlEscape(chart.y_label), "</text>\n");
    // Published markers first, so that the series' points stay visible on top.
    for (const SvgMarker& m : panel.markers) {
      if (!std::isfinite(m.y)) continue;
      const double cx = sx(m.x), cy = sy(m.y);
      absl::StrAppend(&svg, "<path d=\"M", Num(cx), ",", Num(cy - 6), " l6,6 l-6,6 l-6,-6 z\" fill=\"",
                      XmlEscape(m.color), "\" fill-opacity=\"0.8\"><title>", XmlEscape(m.label),
                      ": ", absl::StrFormat("%.3f", m.y), "</title></path>\n");
    }
    // Series.
    for (const SvgSeries& s : panel.series) {
      std::string path;
      bool pen_down = false;
      const size_t n = std::min(s.x.size(), s.y.size());
      for (size_t j = 0; j < n; ++j) {
        if (!std::isfinite(s.y[j]) || !std::isfinite(s.x[j])) {
          pen_down = false;
          continue;
        }
        absl::StrAppend(&path, pen_down ? " L" : (path.empty() ? "M" : " M"), Num(sx(s.x[j])),
                        ",", Num(sy(s.y[j])));
        pen_down = true;
      }
      if (!path.empty()) {
        absl::StrAppend(&svg, "<path d=\"", path, "\" fill=\"none\" stroke=\"", XmlEscape(s.color),
                        "\" stroke-width=\"1.6\"", s.dashed ? " stroke-dasharray=\"5,3\"" : "",
                        "/>\n");
      }
      for (size_t j = 0; j < n; ++j) {
        if (!std::isfinite(s.y[j]) || !std::isfinite(s.x[j])) continue;
        if (j < s.err.size() && std::isfinite(s.err[j]) && s.err[j] > 0) {
          absl::StrAppend(&svg, "<line x1=\"", Num(sx(s.x[j])), "\" y1=\"",
                          Num(sy(s.y[j] - s.err[j])), "\" x2=\"", Num(sx(s.x[j])), "\" y2=\"",
                          Num(sy(s.y[j] + s.err[j])), "\" stroke=\"", XmlEscape(s.color),
                          "\" stroke-width=\"1\"/>\n");
        }
        absl::StrAppend(&svg, "<circle cx=\"", Num(sx(s.x[j])), "\" cy=\"", Num(sy(s.y[j])),
                        "\" r=\"2.5\" fill=\"", XmlEscape(s.color), "\"><title>",
                        XmlEscape(s.label), " k=", Tick(s.x[j]), ": ",
                        absl::StrFormat("%.3f", s.y[j]), "</title></circle>\n");
      }
    }
    absl::StrAppend(&svg, "</g>\n");
  }
  absl::StrAppend(&svg, "</svg>\n");
  return svg;
}

}  // namespace latpred::bench
