#include "cmd/controller_client.h"

#include <cpprest/http_client.h>

#include "controller/status/http_server.h"

namespace lk::cmd {

StatusOr<std::string> ReadControllerToken(const std::string& token_file) {
  if (token_file.empty()) return std::string();
  return ReadAuthTokenFile(token_file);
}

StatusOr<ControllerAnswer> ControllerGet(const std::string& base, const std::string& path,
                                         const std::string& token,
                                         std::chrono::milliseconds timeout) {
  try {
    web::http::client::http_client_config config;
    config.set_timeout(timeout);
    web::http::client::http_client client(base, config);
    web::http::http_request request(web::http::methods::GET);
    request.set_request_uri(path);
    if (!token.empty()) request.headers().add("Authorization", "Bearer " + token);
    web::http::http_response response = client.request(request).get();
    return ControllerAnswer{response.status_code(), response.extract_utf8string(true).get()};
  } catch (const std::exception& e) {
    return Status::Unavailable(e.what());
  }
}

std::string ControllerUnauthorized(const std::string& url, const std::string& token_file) {
  if (token_file.empty()) {
    return "controller at " + url + " requires a bearer token (HTTP 401): pass "
           "--auth-token-file FILE, a file (mode 0600) holding the token the controller was "
           "started with";
  }
  return "controller at " + url + " refused the token of --auth-token-file " + token_file +
         " (HTTP 401): is it the token the controller was started with?";
}

}  // namespace lk::cmd
