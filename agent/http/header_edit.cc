#include "http/header_edit.h"

#include <algorithm>
#include <cctype>

namespace shadowtap::http {
namespace {

bool equalsLower(std::string_view name, std::string_view lowerName) {
  if (name.size() != lowerName.size()) {
    return false;
  }
  for (size_t i = 0; i < name.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(name[i])) != lowerName[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string HeaderEdit::apply(std::string bytes) const {
  if (!changesHeaders()) {
    return bytes;
  }
  // Walk the head line by line: [start, nl] is one line including its '\n'.
  size_t firstNl = bytes.find('\n');
  if (firstNl == std::string::npos) {
    return bytes;
  }
  const std::string_view eol = (firstNl > 0 && bytes[firstNl - 1] == '\r') ? "\r\n" : "\n";
  std::string out;
  out.reserve(bytes.size() + 64);
  out.append(bytes, 0, firstNl + 1);
  size_t start = firstNl + 1;
  bool dropping = false;  // inside a removed header, so its continuation lines go too
  while (start < bytes.size()) {
    size_t nl = bytes.find('\n', start);
    if (nl == std::string::npos) {
      return bytes;  // incomplete head: leave it alone
    }
    std::string_view line(bytes.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.empty()) {
      for (const auto& [name, value] : add_) {
        out.append(name).append(": ").append(value).append(eol);
      }
      out.append(bytes, start, std::string::npos);  // blank line and body
      return out;
    }
    const bool continuation = line.front() == ' ' || line.front() == '\t';
    if (!continuation) {
      size_t colon = line.find(':');
      std::string_view name = line.substr(0, colon == std::string_view::npos ? 0 : colon);
      while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) {
        name.remove_suffix(1);
      }
      dropping = std::any_of(drop_.begin(), drop_.end(), [&](const std::string& d) { return equalsLower(name, d); });
    }
    if (!dropping) {
      out.append(bytes, start, nl + 1 - start);
    }
    start = nl + 1;
  }
  return bytes;
}

}  // namespace shadowtap::http
