#include "engines/kv_engine.h"

#include "common/duration.h"

namespace coffer::engines {
namespace {

// Vault: a "ttl" key is advisory only; it sets lease_duration and creates no lease. A duration
// string or a non-negative whole number counts; anything else is ignored.
std::optional<std::int64_t> ttl_from_string(const crypto::SecretString& s) {
  auto parsed = parse_duration(std::string_view(s.data(), s.size()));
  return parsed.ok() ? std::optional<std::int64_t>(*parsed) : std::nullopt;
}

// A SAX pass over a stored secret: checks that the text is one JSON object and reads its
// top-level "ttl" (the last "ttl" key wins, as in a DOM).
class TopLevelTtl final : public nlohmann::json_sax<crypto::SecretJson> {
 public:
  bool object() const { return object_; }
  std::optional<std::int64_t> ttl() const { return ttl_; }

  bool null() override { return scalar(); }
  bool boolean(bool) override { return scalar(); }
  bool number_integer(number_integer_t v) override {
    if (at_ttl_ && v >= 0) ttl_ = v;
    return scalar();
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (at_ttl_) ttl_ = static_cast<std::int64_t>(v);
    return scalar();
  }
  bool number_float(number_float_t, const string_t&) override { return scalar(); }
  bool string(string_t& v) override {
    if (at_ttl_) ttl_ = ttl_from_string(v);
    return scalar();
  }
  bool binary(binary_t&) override { return scalar(); }
  bool start_object(std::size_t) override {
    if (depth_ == 0) object_ = true;
    return open();
  }
  bool key(string_t& k) override {
    at_ttl_ = depth_ == 1 && k == "ttl";
    if (at_ttl_) ttl_.reset();  // a later "ttl" replaces an earlier one
    return true;
  }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  bool scalar() {
    at_ttl_ = false;
    return depth_ > 0;  // a bare scalar at the top is not a secret
  }
  bool open() {
    at_ttl_ = false;
    ++depth_;
    return object_;
  }
  bool close() {
    --depth_;
    return true;
  }

  int depth_ = 0;
  bool object_ = false;
  bool at_ttl_ = false;
  std::optional<std::int64_t> ttl_;
};

}  // namespace

KvEngine::KvEngine(storage::Barrier& barrier, std::string mount)
    : barrier_(barrier), mount_(std::move(mount)) {}

Status KvEngine::validate_path(const std::string& path) {
  if (path.empty()) return Error(Code::invalid_argument, "missing secret path");
  if (path.front() == '/' || path.back() == '/') {
    return Error(Code::invalid_argument, "secret path must not begin or end with '/'");
  }
  if (path.find("//") != std::string::npos) {
    return Error(Code::invalid_argument, "secret path must not contain empty segments");
  }
  return Status::Ok();
}

Result<std::optional<KvSecretText>> KvEngine::read_text(const std::string& path) {
  COFFER_RETURN_IF_ERROR(validate_path(path));
  COFFER_ASSIGN_OR_RETURN(auto plain, barrier_.read(mount_, path));
  if (!plain.has_value()) return std::optional<KvSecretText>();
  TopLevelTtl sax;
  const auto text = plain->view(crypto::reveal());
  // The JSON parser itself, not basic_json::sax_parse: that one also instantiates the binary
  // formats' readers, which do not compile for a custom string type (nlohmann 3.11.2).
  using Adapter = decltype(nlohmann::detail::input_adapter(text.begin(), text.end()));
  nlohmann::detail::parser<crypto::SecretJson, Adapter> parser(
      nlohmann::detail::input_adapter(text.begin(), text.end()), nullptr, /*allow_exceptions=*/false);
  if (!parser.sax_parse(&sax, /*strict=*/true) || !sax.object()) {
    // The barrier authenticated it, so this is a coffer bug, not tampering.
    return Error(Code::internal, "stored secret " + mount_ + path + " is not a JSON object");
  }
  KvSecretText secret;
  secret.json = std::move(*plain);
  if (sax.ttl().has_value()) secret.lease_duration = *sax.ttl();
  return std::optional<KvSecretText>(std::move(secret));
}

Status KvEngine::write(const std::string& path, const crypto::SecretJson& data) {
  COFFER_RETURN_IF_ERROR(validate_path(path));
  if (!data.is_object()) return Error(Code::invalid_argument, "secret data must be a JSON object");
  return barrier_.write(mount_, path, crypto::dump_secret(data));
}

Result<bool> KvEngine::exists(const std::string& path) {
  COFFER_RETURN_IF_ERROR(validate_path(path));
  COFFER_ASSIGN_OR_RETURN(auto plain, barrier_.read(mount_, path));
  return plain.has_value();
}

Status KvEngine::remove(const std::string& path) {
  COFFER_RETURN_IF_ERROR(validate_path(path));
  COFFER_ASSIGN_OR_RETURN(bool removed, barrier_.remove(mount_, path));
  (void)removed;  // Vault answers 204 whether or not it existed
  return Status::Ok();
}

Result<std::vector<std::string>> KvEngine::list(const std::string& prefix) {
  if (!prefix.empty() && (prefix.front() == '/' || prefix.back() != '/')) {
    return Error(Code::invalid_argument, "list prefix must be empty or end with '/'");
  }
  return barrier_.list(mount_, prefix);
}

}  // namespace coffer::engines
