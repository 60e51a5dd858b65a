// Record: an audit record as redacted members (see record.h).
#include "audit/record.h"

#include <algorithm>
#include <charconv>

#include "audit/redact.h"

namespace coffer::audit {
namespace {

constexpr std::string_view kSeq = "seq";
constexpr std::string_view kPrev = "prev";

}  // namespace

Status Record::set(std::string_view name, const crypto::SecretJson& value) {
  if (name == kSeq || name == kPrev) {
    return Error(Code::invalid_argument, "audit entry member \"" + std::string(name) + "\" is reserved for the chain");
  }
  std::string text;
  if (!append_json_string(text, name)) return Error(Code::invalid_argument, "audit entry member name is not valid UTF-8");
  text.push_back(':');
  std::string pointer = "/";
  pointer.append(name);
  COFFER_RETURN_IF_ERROR(redact_to_text(*key_, value, pointer, text));
  set_member(name, std::move(text));
  return Status::Ok();
}

void Record::set_text(std::string_view name, std::string_view json_value) {
  std::string text;
  text.reserve(name.size() + json_value.size() + 3);
  (void)append_json_string(text, name);  // the log's own ASCII member names
  text.push_back(':');
  text.append(json_value);
  set_member(name, std::move(text));
}

void Record::set_member(std::string_view name, std::string text) {
  auto it = std::lower_bound(members_.begin(), members_.end(), name,
                             [](const auto& m, std::string_view n) { return std::string_view(m.first) < n; });
  if (it != members_.end() && it->first == name) {
    it->second = std::move(text);
    return;
  }
  members_.emplace(it, std::string(name), std::move(text));
}

bool Record::has(std::string_view name) const {
  return std::any_of(members_.begin(), members_.end(), [&](const auto& m) { return m.first == name; });
}

void Record::append_line(std::uint64_t seq, std::string_view prev, std::string& out) const {
  std::size_t size = 32 + prev.size();
  for (const auto& m : members_) size += m.second.size() + 1;
  out.reserve(out.size() + size);
  out.push_back('{');
  // Members sorted by name, with "prev" and "seq" in their places (as a std::map would put them).
  auto it = members_.begin();
  const auto end = members_.end();
  bool first = true;
  const auto members_below = [&](std::string_view bound) {
    for (; it != end && std::string_view(it->first) < bound; ++it) {
      if (!first) out.push_back(',');
      first = false;
      out.append(it->second);
    }
    if (!first) out.push_back(',');
    first = false;
  };
  members_below(kPrev);
  out.append("\"prev\":\"");
  out.append(prev);
  out.push_back('"');
  members_below(kSeq);
  out.append("\"seq\":");
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, seq);
  out.append(buf, static_cast<std::size_t>(r.ptr - buf));
  for (; it != end; ++it) {
    out.push_back(',');
    out.append(it->second);
  }
  out.push_back('}');
}

}  // namespace coffer::audit
