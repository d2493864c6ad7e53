// HTML building blocks of report.html: tables (numbers right-aligned, the best rows marked,
// sortable by a click on a header through a small inline script) and the page around the
// sections (inline CSS sized to a 1100 px column, so the page fits 1200 px without scrolling).
#pragma once
#include <string>
#include <vector>

namespace mxqat::trainers::html {

struct Column {
  std::string title;
  bool numeric = false;  // right-aligned, sorted by value
};

// rows[i][j] is plain text (escaped here); best[i] marks row i (bold, with a "best" badge after
// the text of column `badge_column`). Empty rows: a "no rows" line instead of a table.
std::string table(const std::string& id, const std::vector<Column>& columns,
                  const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& best = {},
                  size_t badge_column = 0);

// A whole self-contained page: <title>, the CSS, `body`, and the sorting script.
std::string page(const std::string& title, const std::string& body);

}  // namespace mxqat::trainers::html
