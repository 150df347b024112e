// RedisConnection: one synchronous hiredis connection, its URL, replies as plain values,
// pipelining, and the embedded Lua scripts called by EVALSHA.
//
// Owns: the socket (closed on destruction, FD_CLOEXEC so job processes never inherit it).
// Does not own: reconnection policy; a failed command returns Unavailable and the caller
// decides whether to Reconnect(). Not thread-safe: one connection per thread.
// hiredis 0.14 (Debian 12): RESP2 only, no TLS.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "worker/status.h"

namespace lk {

// Where Redis is. Parsed from redis://[[user]:password@]host[:port][/db] or
// unix://[[user]:password@]/path/to/redis.sock[?db=N].
struct RedisEndpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string unix_path;  // non-empty: connect to this socket instead of host:port
  std::string username;   // empty: AUTH with the password alone
  std::string password;
  int db = 0;

  // The URL without the password, for logs and messages.
  std::string Redacted() const;
};

// The longest unix socket path a URL may name. sun_path holds 107 bytes and a NUL, but
// hiredis 0.14 (Debian 12) copies the path with strncpy(sun_path, path, 107) into memory it
// did not zero: a path of exactly 107 bytes is left unterminated and connects to garbage.
inline constexpr size_t kMaxUnixSocketPath = 106;

// InvalidArgument naming what is wrong, with any password redacted; a unix socket path
// longer than kMaxUnixSocketPath is refused here, not at connect.
StatusOr<RedisEndpoint> ParseRedisUrl(std::string_view url);

// "a unix socket path is at most 106 bytes (hiredis 0.14), this one is N": the words of
// every refusal of a long socket path.
std::string UnixSocketPathTooLong(size_t length);

// url's text with any password replaced by "***", for messages about a URL that may not
// parse (RedisEndpoint::Redacted is for one that did).
std::string RedactUrlText(std::string_view url);

// LANEKEEPER_REDIS_URL if set, else redis://127.0.0.1:6379/0.
std::string DefaultRedisUrl();

// A reply as a value tree. Errors from Redis (-ERR ...) are type kError with text in str.
struct RedisReply {
  enum class Type { kNil, kInteger, kString, kStatus, kError, kArray };
  Type type = Type::kNil;
  long long integer = 0;
  std::string str;
  std::vector<RedisReply> elements;

  bool is_nil() const { return type == Type::kNil; }
  bool is_error() const { return type == Type::kError; }
  bool is_array() const { return type == Type::kArray; }
  // The integer, or the string parsed as an integer (Lua numbers arrive as integers,
  // hash fields as strings). 0 when neither.
  long long AsInt() const;
};

// A Lua script embedded at build time. sha1 is computed once from the source.
class LuaScript {
 public:
  LuaScript(std::string name, std::string_view source);
  const std::string& name() const { return name_; }
  std::string_view source() const { return source_; }
  const std::string& sha1() const { return sha1_; }

 private:
  std::string name_;
  std::string_view source_;
  std::string sha1_;
};

class RedisConnection {
 public:
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Connects, authenticates and selects the db. Unavailable with the endpoint named when
  // Redis cannot be reached; InvalidArgument when AUTH is refused.
  static StatusOr<std::unique_ptr<RedisConnection>> Connect(const RedisEndpoint& endpoint,
                                                            std::chrono::milliseconds timeout);

  const RedisEndpoint& endpoint() const { return endpoint_; }

  // Drops the socket and connects again to the same endpoint.
  Status Reconnect();

  // Read timeout for replies; 0 = wait forever. Blocking commands (BRPOP) need one longer
  // than their own block time.
  void SetReadTimeout(std::chrono::milliseconds timeout);
  std::chrono::milliseconds read_timeout() const { return read_timeout_; }

  // Runs one command and returns its reply. A Redis error reply is a value (kError), not
  // a failed Status; a broken connection is Unavailable.
  StatusOr<RedisReply> Command(const std::vector<std::string>& argv);

  // Pipelining: Append any number of commands, then GetReply once per command, in order.
  void Append(const std::vector<std::string>& argv);
  StatusOr<RedisReply> GetReply();

  // Appends EVALSHA of script with keys and args. Use GetReply for the result.
  void AppendScript(const LuaScript& script, const std::vector<std::string>& keys,
                    const std::vector<std::string>& args);

  // EVALSHA, falling back to EVAL on NOSCRIPT (after a restart or SCRIPT FLUSH, which also
  // caches the script again). An error reply from the script becomes Internal with the
  // script's name, unless it is one of ours ("LK ..."), which becomes FailedPrecondition.
  StatusOr<RedisReply> RunScript(const LuaScript& script, const std::vector<std::string>& keys,
                                 const std::vector<std::string>& args);

  // Turns a reply to AppendScript into the same result RunScript would give, re-running
  // the script by EVAL when the reply was NOSCRIPT.
  StatusOr<RedisReply> FinishScript(const LuaScript& script, const std::vector<std::string>& keys,
                                    const std::vector<std::string>& args, RedisReply reply);

 private:
  struct Impl;
  explicit RedisConnection(RedisEndpoint endpoint);
  Status Open(std::chrono::milliseconds timeout);
  RedisEndpoint endpoint_;
  std::chrono::milliseconds connect_timeout_{2000};
  std::chrono::milliseconds read_timeout_{2000};
  std::unique_ptr<Impl> impl_;
};

}  // namespace lk
