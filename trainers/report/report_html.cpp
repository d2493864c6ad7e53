// report.html's tables and page frame.
#include "trainers/report/report_html.h"

#include "trainers/report/report_svg.h"

namespace mxqat::trainers::html {

std::string table(const std::string& id, const std::vector<Column>& columns,
                  const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& best,
                  size_t badge_column) {
  if (rows.empty()) return "<p class=\"no-data\" id=\"" + svg::escape(id) + "\">no rows</p>";
  std::string s = "<div class=\"table-wrap\"><table class=\"sortable\" id=\"" + svg::escape(id) + "\"><thead><tr>";
  for (const auto& c : columns)
    s += std::string("<th") + (c.numeric ? " class=\"num\"" : "") + " title=\"click to sort\">" +
         svg::escape(c.title) + "</th>";
  s += "</tr></thead><tbody>";
  for (size_t i = 0; i < rows.size(); ++i) {
    const bool b = i < best.size() && best[i];
    s += b ? "<tr class=\"best\">" : "<tr>";
    for (size_t j = 0; j < columns.size(); ++j) {
      const std::string cell = j < rows[i].size() ? svg::escape(rows[i][j]) : "";
      s += std::string("<td") + (columns[j].numeric ? " class=\"num\"" : "") + ">" + cell +
           (b && j == badge_column ? " <span class=\"badge\" title=\"best at this format\">best</span>" : "") +
           "</td>";
    }
    s += "</tr>";
  }
  return s + "</tbody></table></div>";
}

namespace {
const char* const kCss =
    "body{font-family:sans-serif;font-size:15px;line-height:1.45;color:#111;max-width:1100px;margin:1.5em auto;"
    "padding:0 12px;box-sizing:border-box}"
    "h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc;padding-bottom:.2em}h3{margin:1.4em 0 .4em}"
    "p,li{max-width:60em}"
    ".table-wrap{max-width:100%;overflow-x:auto}"
    "table{border-collapse:collapse;margin:.6em 0 1em;font-size:14px}"
    "th,td{border-bottom:1px solid #ddd;padding:3px 10px;text-align:left;vertical-align:top}"
    "th{background:#f2f2f2;cursor:pointer;user-select:none;white-space:nowrap}"
    "th.num,td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "th[data-sort=asc]::after{content:' \\25B2'}th[data-sort=desc]::after{content:' \\25BC'}"
    "tr.best td{font-weight:bold;background:#eef6ee}"
    ".badge{font-size:11px;font-weight:bold;border:1px solid #333;border-radius:3px;padding:0 3px;background:#fff}"
    "svg.chart{max-width:100%;height:auto;display:block;margin:.4em 0 1.2em}"
    "pre.sample{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f6f6;padding:.6em .8em;margin:.2em 0 1em;"
    "font-size:13px}"
    ".prompt{background:#ffe9a8}"
    ".note{color:#444;font-size:14px}"
    "code{overflow-wrap:anywhere}"
    "figure.fig{margin:0 0 1em}figcaption{font-weight:bold;margin:1em 0 .2em}";

// Click a header: sort the body rows by that column (numbers by value, "-" and text last in a
// numeric column); click again to reverse.
const char* const kSortScript =
    "<script>document.querySelectorAll('table.sortable').forEach(function(t){"
    "t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){"
    "var num=th.classList.contains('num'),desc=th.getAttribute('data-sort')==='asc',tb=t.tBodies[0];"
    "t.querySelectorAll('th').forEach(function(h){h.removeAttribute('data-sort')});"
    "th.setAttribute('data-sort',desc?'desc':'asc');"
    "var key=function(r){var s=r.cells[i].textContent.trim();if(!num)return s;"
    "var v=parseFloat(s.replace(/[^0-9eE+.\\-]/g,''));return isNaN(v)?null:v};"
    "var rows=Array.prototype.slice.call(tb.rows);rows.sort(function(a,b){var x=key(a),y=key(b);"
    "if(x===null||y===null)return x===y?0:(x===null?1:-1);var c=x<y?-1:x>y?1:0;return desc?-c:c});"
    "rows.forEach(function(r){tb.appendChild(r)})})})});</script>";
}  // namespace

std::string page(const std::string& title, const std::string& body) {
  return "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>" +
         svg::escape(title) + "</title><style>" + kCss + "</style></head><body>" + body + kSortScript +
         "</body></html>\n";
}

}  // namespace mxqat::trainers::html
