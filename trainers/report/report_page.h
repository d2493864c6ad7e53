// report.html of a Report: one self-contained page (inline CSS, SVG and a sorting script).
#pragma once
#include <string>

#include "trainers/report/report_data.h"

namespace mxqat::trainers::report {

std::string page_html(const Report& r);

}  // namespace mxqat::trainers::report
