// Helpers for the audit tests: a temp dir with a real sqlite database, a fixed audit key, a
// fault-injecting sink, and file editing as an attacker with disk access would do it.
#pragma once

#include <fstream>
#include <sstream>

#include "audit/audit_log.h"
#include "audit/verify.h"
#include "storage/sqlite_storage.h"
#include "tests/unit/storage/storage_test_util.h"

namespace coffer::audit::testing {

using coffer::testing::TempDir;

inline crypto::SecretBytes test_key(std::uint8_t fill = 0x42) {
  crypto::SecretBytes k(32);
  for (std::size_t i = 0; i < 32; ++i) k.data(crypto::reveal())[i] = static_cast<std::uint8_t>(fill + i);
  return k;
}

inline std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
inline void write_all(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}
inline std::vector<std::string> lines_of(const std::string& data) {
  std::vector<std::string> out;
  std::istringstream in(data);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}
inline std::string join_lines(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

inline crypto::SecretJson request_entry(const std::string& path, const std::string& secret) {
  crypto::SecretJson e;
  e["type"] = "request";
  e["request"]["path"] = path;
  e["request"]["operation"] = "update";
  e["request"]["data"]["password"] = secret;
  e["request"]["data"]["path"] = secret;  // an allow-listed key name below data: still HMAC'd
  return e;
}

// A sink in memory whose next writes can be made to fail (disk full).
class FaultSink final : public AuditSink {
 public:
  explicit FaultSink(std::string* data, bool* fail) : data_(data), fail_(fail) {}
  Status append(std::string_view line) override {
    if (*fail_) return Error(Code::unavailable, "cannot write audit file fault: No space left on device");
    data_->append(line);
    return Status::Ok();
  }
  Status sync() override { return *fail_ ? Error(Code::unavailable, "fsync failed") : Status::Ok(); }
  Status reopen() override { return Status::Ok(); }
  Result<std::string> last_line() override {
    if (data_->empty()) return std::string();
    std::string d = data_->substr(0, data_->size() - 1);
    auto nl = d.rfind('\n');
    return nl == std::string::npos ? d : d.substr(nl + 1);
  }
  std::string describe() const override { return "fault"; }

 private:
  std::string* data_;
  bool* fail_;
};

}  // namespace coffer::audit::testing
