// The audit verifier (see verify.h).
#include "audit/verify.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "crypto/mac.h"

namespace coffer::audit {
namespace {

struct Line {
  std::string_view text;
  std::uint64_t offset;
  bool complete;  // ended with '\n'
};

std::vector<Line> split_lines(const std::string& data) {
  std::vector<Line> out;
  std::size_t pos = 0;
  while (pos < data.size()) {
    const auto nl = data.find('\n', pos);
    if (nl == std::string::npos) {
      out.push_back({std::string_view(data).substr(pos), pos, false});
      break;
    }
    out.push_back({std::string_view(data).substr(pos, nl - pos), pos, true});
    pos = nl + 1;
  }
  return out;
}

// seq of a line, when it parses.
std::optional<std::uint64_t> peek_seq(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("seq") || !j["seq"].is_number_unsigned()) return std::nullopt;
  return j["seq"].get<std::uint64_t>();
}

class Verifier {
 public:
  explicit Verifier(const VerifyOptions& o) : o_(o) {}

  // Returns false once a failure has been recorded.
  bool file(const std::string& name, const std::string& data) {
    const auto lines = split_lines(data);
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const Line& l = lines[i];
      if (!l.complete) return fail(name, l.offset, expected_, "truncated: the file ends in a partial record");
      auto j = nlohmann::json::parse(l.text, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("seq") || !j["seq"].is_number_unsigned() ||
          !j.contains("prev") || !j["prev"].is_string() || !j.contains("type") || !j["type"].is_string()) {
        return fail(name, l.offset, expected_, "edited: the record is not a well-formed audit record");
      }
      const std::uint64_t seq = j["seq"].get<std::uint64_t>();
      const std::string prev = j["prev"].get<std::string>();
      if (r_.records == 0) {
        r_.first_seq = seq;
        if (seq != 1 || prev != kGenesisHash) {
          r_.warnings.push_back("the first file starts at record " + std::to_string(seq) +
                                " (earlier records are in files not given)");
        }
      } else if (seq != expected_) {
        if (seq < expected_) {
          return fail(name, l.offset, seq, "reordered or duplicated: record " + std::to_string(seq) +
                                               " follows record " + std::to_string(expected_ - 1));
        }
        const auto next = i + 1 < lines.size() ? peek_seq(lines[i + 1].text) : std::nullopt;
        if (next.has_value() && *next == expected_) {
          return fail(name, l.offset, seq, "reordered: record " + std::to_string(seq) + " comes before record " +
                                               std::to_string(expected_));
        }
        return fail(name, l.offset, seq, "deleted: records " + std::to_string(expected_) + " to " +
                                             std::to_string(seq - 1) + " are missing before this record");
      } else if (prev != last_hash_) {
        return fail(last_file_, last_offset_, seq - 1, "edited: record " + std::to_string(seq - 1) +
                                                           " does not match the hash recorded in record " +
                                                           std::to_string(seq) + " (at offset " +
                                                           std::to_string(l.offset) + " of " + name + ")");
      }
      if (j["type"] == "checkpoint") {
        ++r_.checkpoints;
        if (o_.checkpoint_key != nullptr) {
          const auto& c = j.value("checkpoint", nlohmann::json::object());
          const std::string reason = c.is_object() ? c.value("reason", "") : "";
          const std::string mac = c.is_object() ? c.value("mac", "") : "";
          auto want = checkpoint_mac(*o_.checkpoint_key, seq, prev, reason);
          if (!want.ok() || !crypto::constant_time_equal(crypto::as_bytes(*want), crypto::as_bytes(mac))) {
            return fail(name, l.offset, seq, "forged checkpoint: its MAC does not verify");
          }
        }
        covered_ = seq;
      }
      last_hash_ = line_hash(l.text);
      if (o_.db_head && o_.db_head->seq == seq) head_hash_seen_ = last_hash_;
      last_file_ = name;
      last_offset_ = l.offset;
      r_.last_seq = seq;
      expected_ = seq + 1;
      ++r_.records;
      if (covered_ != seq && uncovered_from_ == 0) {
        uncovered_from_ = seq;
        uncovered_file_ = name;
        uncovered_offset_ = l.offset;
      }
      if (covered_ == seq) uncovered_from_ = 0;
    }
    return true;
  }

  VerifyReport finish() {
    if (r_.failure) return r_;
    if (o_.checkpoint_key == nullptr) r_.warnings.push_back("checkpoint MACs were not checked (no key)");
    if (r_.records == 0) {
      if (o_.db_head && o_.db_head->seq > 0) {
        fail("", 0, o_.db_head->seq, "truncated: no records, but the database head is at record " +
                                          std::to_string(o_.db_head->seq));
      }
      return r_;
    }
    if (o_.db_head) {
      const Head& h = *o_.db_head;
      if (h.seq > r_.last_seq) {
        fail(last_file_, last_offset_, r_.last_seq, "truncated: the log ends at record " +
                                                        std::to_string(r_.last_seq) +
                                                        " but the database head is at record " + std::to_string(h.seq));
        return r_;
      }
      if (h.seq >= r_.first_seq && head_hash_seen_ != h.hash) {
        fail("", 0, h.seq, "edited or replaced: record " + std::to_string(h.seq) +
                               " does not match the chain head stored in the database");
        return r_;
      }
    }
    if (uncovered_from_ != 0) {
      const std::string what = "records " + std::to_string(uncovered_from_) + " to " + std::to_string(r_.last_seq) +
                               " are not covered by a checkpoint MAC";
      if (o_.db_head && o_.db_head->stopped) {
        fail(uncovered_file_, uncovered_offset_, uncovered_from_,
             "forged or appended after shutdown: " + what + " although the daemon stopped cleanly");
      } else {
        r_.warnings.push_back(what + " (normal while cofferd runs; they are covered at the next checkpoint)");
      }
    }
    return r_;
  }

 private:
  bool fail(const std::string& file, std::uint64_t offset, std::uint64_t seq, std::string problem) {
    r_.failure = Finding{file, offset, seq, std::move(problem)};
    return false;
  }

  const VerifyOptions& o_;
  VerifyReport r_;
  std::uint64_t expected_ = 1;
  std::string last_hash_ = kGenesisHash;
  std::string last_file_;
  std::uint64_t last_offset_ = 0;
  std::uint64_t covered_ = 0;
  std::uint64_t uncovered_from_ = 0;
  std::string uncovered_file_;
  std::uint64_t uncovered_offset_ = 0;
  std::string head_hash_seen_;
};

}  // namespace

Result<VerifyReport> verify_files(const std::vector<std::string>& files, const VerifyOptions& options) {
  if (files.empty()) return Error(Code::invalid_argument, "no audit files given");
  Verifier v(options);
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) return Error(Code::not_found, "cannot read audit file " + f);
    std::ostringstream ss;
    ss << in.rdbuf();
    if (!v.file(f, ss.str())) break;
  }
  return v.finish();
}

}  // namespace coffer::audit
