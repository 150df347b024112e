// Status and StatusOr<T>: expected failures as values (Redis down, bad input, not found).
//
// Owns: an error code and a one-line human message. Does not own: logging or exit codes;
// callers decide what a failure means for them. Thread-safe as any value type.
// Broken invariants are not Statuses: they abort.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace lk {

class Status {
 public:
  enum class Code {
    kOk,
    kNotFound,            // the thing asked for does not exist; an ordinary answer
    kInvalidArgument,     // the caller's input is wrong; retrying will not help
    kUnavailable,         // a dependency (Redis, the API server) cannot be reached; retry
    kFailedPrecondition,  // the world is not in a state that allows this (e.g. job not dead)
    kConflict,            // someone else holds it (owner lease, pid file, 409)
    kGone,                // a version asked for is no longer kept (HTTP 410): read afresh
    kInternal,            // the dependency answered something we did not expect
  };

  Status() = default;
  static Status OK() { return Status(); }
  static Status NotFound(std::string m) { return Status(Code::kNotFound, std::move(m)); }
  static Status InvalidArgument(std::string m) { return Status(Code::kInvalidArgument, std::move(m)); }
  static Status Unavailable(std::string m) { return Status(Code::kUnavailable, std::move(m)); }
  static Status FailedPrecondition(std::string m) {
    return Status(Code::kFailedPrecondition, std::move(m));
  }
  static Status Conflict(std::string m) { return Status(Code::kConflict, std::move(m)); }
  static Status Gone(std::string m) { return Status(Code::kGone, std::move(m)); }
  static Status Internal(std::string m) { return Status(Code::kInternal, std::move(m)); }

  bool ok() const { return code_ == Code::kOk; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsUnavailable() const { return code_ == Code::kUnavailable; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const { return ok() ? "OK" : message_; }

  // Returns a copy whose message is "context: message".
  Status WithContext(const std::string& context) const {
    return ok() ? *this : Status(code_, context + ": " + message_);
  }

 private:
  Status(Code c, std::string m) : code_(c), message_(std::move(m)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// Either a T or a non-OK Status. Accessing value() of a failed StatusOr aborts.
template <typename T>
class StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    if (status_.ok()) std::abort();  // an OK status carries no value
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { Check(); return *value_; }
  const T& value() const& { Check(); return *value_; }
  T&& value() && { Check(); return std::move(*value_); }
  T* operator->() { Check(); return &*value_; }
  const T* operator->() const { Check(); return &*value_; }
  T& operator*() & { Check(); return *value_; }
  const T& operator*() const& { Check(); return *value_; }

 private:
  void Check() const {
    if (!status_.ok()) std::abort();
  }
  Status status_;
  std::optional<T> value_;
};

}  // namespace lk

#define LK_RETURN_IF_ERROR(expr)            \
  do {                                      \
    ::lk::Status lk_status_ = (expr);       \
    if (!lk_status_.ok()) return lk_status_; \
  } while (0)
