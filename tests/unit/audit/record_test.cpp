// audit::Record and the text redaction behind it: a line written from a Record is byte for byte
// what the DOM path gives (redact(entry), plus seq and prev, dumped by nlohmann), for awkward
// input too (escapes, Unicode, numbers, nesting); records logged as a pair are one write and
// chain like two; what cannot be written as JSON text is refused without touching the chain.
#include <gtest/gtest.h>

#include "audit/record.h"
#include "audit/redact.h"
#include "tests/unit/audit/audit_test_util.h"

namespace coffer::audit {
namespace {

using namespace coffer::audit::testing;

// An in-memory sink that counts write calls.
class CountingSink final : public AuditSink {
 public:
  explicit CountingSink(std::string* data, int* appends) : data_(data), appends_(appends) {}
  Status append(std::string_view line) override {
    ++*appends_;
    data_->append(line);
    return Status::Ok();
  }
  Status sync() override { return Status::Ok(); }
  Status reopen() override { return Status::Ok(); }
  Result<std::string> last_line() override { return std::string(); }
  std::string describe() const override { return "memory"; }

 private:
  std::string* data_;
  int* appends_;
};

struct MemLog {
  std::string data;
  int appends = 0;
  crypto::SecretBytes key = test_key();
  std::unique_ptr<AuditLog> log;
  explicit MemLog(AuditOptions o = {}) {
    auto l = AuditLog::open(std::make_unique<CountingSink>(&data, &appends), key, nullptr, o);
    EXPECT_OK(l);
    log = std::move(l).value();
  }
  std::vector<std::string> lines() const { return lines_of(data); }
};

// What the DOM path writes for `entry` as record `seq` after a line hashing to `prev`.
std::string dom_line(const crypto::SecretBytes& key, const crypto::SecretJson& entry, std::uint64_t seq,
                     const std::string& prev) {
  auto r = redact(key, entry);
  EXPECT_OK(r);
  nlohmann::json j = *r;
  j["seq"] = seq;
  j["prev"] = prev;
  return j.dump();
}

crypto::SecretJson awkward_entry() {
  crypto::SecretJson e;
  e["time"] = "2026-11-25T10:00:00.000001Z";
  e["type"] = "response";
  e["error"] = "quote \" backslash \\ tab \t newline \n ctrl \x01\x1f del \x7f slash / é 😀 \u2028";
  auto& r = e["request"];
  r["id"] = "6f1c";
  r["path"] = "secret/ünïcödé/\"x\"";
  r["remote_port"] = 51234;
  r["client_token"] = "hvs.secret-token";
  r["namespace"]["id"] = "root";
  r["data"]["password"] = "hunter2";
  r["data"]["path"] = "looks allow-listed, is not";
  r["data"]["pin"] = -42;
  r["data"]["big"] = std::uint64_t{18446744073709551615u};
  r["data"]["ratio"] = 1.5;
  r["data"]["tiny"] = 1e-300;
  r["data"]["zero"] = -0.0;
  r["data"]["flag"] = true;
  r["data"]["nothing"] = nullptr;
  r["data"]["empty_obj"] = crypto::SecretJson::object();
  r["data"]["empty_arr"] = crypto::SecretJson::array();
  r["data"]["list"] = crypto::SecretJson::array({"a", 1, false, crypto::SecretJson::object({{"k", "v"}})});
  r["data"]["ke\"y\n\x02é"] = "v";
  auto& a = e["auth"];
  a["policies"] = crypto::SecretJson::array({"default", "web"});
  a["token_ttl"] = 3600;
  a["metadata"]["common_name"] = "web01";
  a["metadata"]["other"] = "hashed";
  auto& out = e["response"];
  out["status_code"] = 200;
  out["data"]["v"] = 2.5;
  out["auth"]["policies"] = crypto::SecretJson::array({"p"});
  out["auth"]["lease_duration"] = 60;
  return e;
}

TEST(AuditRecord, LineIsByteForByteTheDomPath) {
  MemLog m;
  const crypto::SecretJson entries[] = {awkward_entry(), request_entry("secret/app/db", "hunter2")};
  for (const auto& e : entries) {
    crypto::SecretJson timed = e;
    timed["time"] = "2026-11-25T10:00:00.000002Z";
    ASSERT_OK(m.log->log(timed));
    const auto lines = m.lines();
    ASSERT_GE(lines.size(), 2u);
    EXPECT_EQ(lines.back(), dom_line(m.key, timed, m.log->head().seq, line_hash(lines[lines.size() - 2])));
  }
}

TEST(AuditRecord, RedactToTextMatchesRedactForEveryMemberPosition) {
  const auto key = test_key();
  const crypto::SecretJson e = awkward_entry();
  auto dom = redact(key, e);
  ASSERT_OK(dom);
  for (auto it = e.begin(); it != e.end(); ++it) {
    std::string pointer = "/" + std::string(it.key().data(), it.key().size());
    std::string text;
    ASSERT_OK(redact_to_text(key, it.value(), pointer, text));
    EXPECT_EQ(pointer, "/" + std::string(it.key().data(), it.key().size())) << "pointer not restored";
    EXPECT_EQ(text, (*dom)[std::string(it.key().data(), it.key().size())].dump());
  }
  std::string pointer, text;
  ASSERT_OK(redact_to_text(key, e, pointer, text));
  EXPECT_EQ(text, dom->dump());
  EXPECT_EQ(text.find("hunter2"), std::string::npos);
  EXPECT_EQ(text.find("hvs.secret-token"), std::string::npos);
  EXPECT_EQ(text.find("-42"), std::string::npos);  // numbers under data are HMAC'd
}

TEST(AuditRecord, JsonStringEscapingMatchesNlohmann) {
  for (std::string s : {std::string(""), std::string("plain"), std::string("\"\\/\b\f\n\r\t"),
                        std::string("\x00\x01\x1f\x20\x7f", 5), std::string("é€😀\xef\xbf\xbf"),
                        std::string("\xf4\x8f\xbf\xbf")}) {
    std::string out;
    ASSERT_TRUE(append_json_string(out, s)) << s;
    EXPECT_EQ(out, nlohmann::json(s).dump()) << s;
  }
  // Not UTF-8: nlohmann's dump throws on these; append_json_string says no.
  for (std::string s : {std::string("\xff"), std::string("\xc0\xaf"), std::string("\xe0\x80\xaf"),
                        std::string("\xed\xa0\x80"), std::string("\xf4\x90\x80\x80"), std::string("ab\xc3"),
                        std::string("\xe2\x82")}) {
    std::string out;
    EXPECT_FALSE(append_json_string(out, s)) << s;
    EXPECT_THROW((void)nlohmann::json(s).dump(), nlohmann::json::type_error);
  }
}

TEST(AuditRecord, InvalidUtf8LeftInClearIsRefusedAndTheChainIsUntouched) {
  MemLog m;
  const auto before = m.data;
  EXPECT_EQ(m.log->log(request_entry("secret/\xff\xfe", "v")).code(), Code::invalid_argument);
  EXPECT_EQ(m.data, before);
  // A key that is not UTF-8 is named by its object's position, never by its bytes.
  crypto::SecretJson bad_key = request_entry("secret/a", "v");
  bad_key["request"]["data"]["k\xff\xfe"] = "v";
  const Status st = m.log->log(bad_key);
  EXPECT_EQ(st.code(), Code::invalid_argument);
  EXPECT_NE(st.message().find("/request/data"), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find("\xff"), std::string::npos);
  EXPECT_EQ(m.data, before);
  // A value that is HMAC'd may be any bytes.
  ASSERT_OK(m.log->log(request_entry("secret/a", "\xff\xfe")));
  ASSERT_OK(m.log->close());
  TempDir dir;
  write_all(dir.file("a.log"), m.data);
  auto ck = derive_checkpoint_key(m.key);
  VerifyOptions o;
  o.checkpoint_key = &*ck;
  auto r = verify_files({dir.file("a.log")}, o);
  ASSERT_OK(r);
  EXPECT_TRUE(r->ok()) << r->failure->problem;
  EXPECT_EQ(r->records, 3u);
}

TEST(AuditRecord, SharedMembersAndAPairInOneWrite) {
  MemLog m;
  Record base = m.log->record();
  crypto::SecretJson request;
  request["path"] = "secret/app/db";
  request["client_token"] = "hvs.the-token";
  ASSERT_OK(base.set("request", request));
  Record first = base;
  Record second = base;
  ASSERT_OK(first.set("type", crypto::SecretJson("request")));
  ASSERT_OK(second.set("type", crypto::SecretJson("response")));
  ASSERT_OK(second.set("error", crypto::SecretJson("permission denied")));
  EXPECT_EQ(first.set("seq", crypto::SecretJson(7)).code(), Code::invalid_argument);
  EXPECT_EQ(first.set("prev", crypto::SecretJson("x")).code(), Code::invalid_argument);
  const int appends = m.appends;
  ASSERT_OK(m.log->log(first, second));
  EXPECT_EQ(m.appends, appends + 1) << "a pair is one write";
  const auto lines = m.lines();
  ASSERT_EQ(lines.size(), 3u);
  auto req = nlohmann::json::parse(lines[1]);
  auto resp = nlohmann::json::parse(lines[2]);
  EXPECT_EQ(req["type"], "request");
  EXPECT_EQ(resp["type"], "response");
  EXPECT_EQ(resp["error"], "permission denied");
  EXPECT_FALSE(req.contains("error"));
  EXPECT_EQ(req["request"], resp["request"]);
  EXPECT_EQ(req["seq"].get<std::uint64_t>() + 1, resp["seq"].get<std::uint64_t>());
  EXPECT_EQ(resp["prev"], line_hash(lines[1]));
  EXPECT_EQ(lines[1].find("hvs.the-token"), std::string::npos);
  auto h = m.log->hash("hvs.the-token");
  ASSERT_OK(h);
  EXPECT_EQ(req["request"]["client_token"], *h);
  // A record without a type is refused, as an entry without one is.
  EXPECT_EQ(m.log->log(base).code(), Code::internal);
}

// A checkpoint due between the two records of a pair comes between them, as with two log() calls.
TEST(AuditRecord, PairWithACheckpointBetweenIsTheSameSequenceAsTwoLogs) {
  AuditOptions o;
  o.checkpoint_every = 2;
  MemLog pair(o), single(o);
  const auto entry = [](const char* type) {
    crypto::SecretJson e = request_entry("secret/a", "v");
    e["type"] = type;
    e["time"] = "2026-11-25T10:00:00.000000Z";
    return e;
  };
  for (MemLog* m : {&pair, &single}) ASSERT_OK(m->log->log(entry("request")));
  Record a = pair.log->record(), b = pair.log->record();
  for (auto [rec, type] : {std::pair{&a, "request"}, std::pair{&b, "response"}}) {
    const auto e = entry(type);
    for (auto it = e.begin(); it != e.end(); ++it) {
      ASSERT_OK(rec->set(std::string(it.key().data(), it.key().size()), it.value()));
    }
  }
  ASSERT_OK(pair.log->log(a, b));
  ASSERT_OK(single.log->log(entry("request")));
  ASSERT_OK(single.log->log(entry("response")));
  auto types_of = [](const std::vector<std::string>& lines) {
    std::vector<std::string> types;
    for (const auto& l : lines) types.push_back(nlohmann::json::parse(l)["type"].get<std::string>());
    return types;
  };
  EXPECT_EQ(types_of(pair.lines()), types_of(single.lines()));
  EXPECT_EQ(types_of(pair.lines()),
            (std::vector<std::string>{"checkpoint", "request", "request", "checkpoint", "response"}));
}

}  // namespace
}  // namespace coffer::audit
