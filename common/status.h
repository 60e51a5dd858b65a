// Error values for coffer: Status (ok or a code plus an operator-actionable message) and
// Result<T> (a value or a Status). No exceptions cross a module boundary; every fallible
// function returns one of these.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace coffer {

// Canonical codes (abseil's set, trimmed): they say whether retrying can help and map onto
// HTTP statuses at the API edge.
enum class Code {
  ok,
  invalid_argument,     // bad input: retrying the same request will not help (400)
  not_found,            // the thing does not exist (404)
  already_exists,       // create of something present (400/409)
  permission_denied,    // authenticated but not allowed, or bad credentials (403)
  failed_precondition,  // system not in the state the call needs (e.g. not initialised)
  unavailable,          // transient: device busy, sealed, retry later (503)
  resource_exhausted,   // limits, rate limits (413/429)
  data_loss,            // stored data failed authentication or is corrupt (500, fail closed)
  internal,             // a bug or an unexpected library failure (500)
};

const char* code_name(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::ok; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "what failed: why" chaining for context added by callers.
  Status with_context(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

  std::string to_string() const;

 private:
  Code code_ = Code::ok;
  std::string message_;
};

inline Status Error(Code code, std::string message) { return Status(code, std::move(message)); }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).ok()) v_ = Status(Code::internal, "Result built from an ok Status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace coffer

#define COFFER_CONCAT_INNER(a, b) a##b
#define COFFER_CONCAT(a, b) COFFER_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` is not ok.
#define COFFER_RETURN_IF_ERROR(expr)             \
  do {                                           \
    ::coffer::Status coffer_status_ = (expr);    \
    if (!coffer_status_.ok()) return coffer_status_; \
  } while (0)

// `COFFER_ASSIGN_OR_RETURN(auto x, f());` declares x from a Result or returns its Status.
#define COFFER_ASSIGN_OR_RETURN(lhs, expr) \
  COFFER_ASSIGN_OR_RETURN_IMPL(COFFER_CONCAT(coffer_result_, __LINE__), lhs, expr)
#define COFFER_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
