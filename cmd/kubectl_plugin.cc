#include "cmd/kubectl_plugin.h"

#include <array>

#include "controller/kube/kube_config.h"

namespace lk::cmd {

namespace kubectl_plugin {

constexpr std::string_view kUsage =
    "kubectl lanekeeper: lanekeeper as a kubectl plugin\n"
    "\n"
    "  kubectl lanekeeper doctor NAME [-n NAMESPACE] [--json]   the health checks of a Lane\n"
    "  kubectl lanekeeper --version\n"
    "\n"
    "NAME is a Lane in NAMESPACE (default: the namespace of the kubeconfig context). Also\n"
    "--kubeconfig FILE and --context NAME, as kubectl takes them; other flags go to\n"
    "`lanekeeper doctor --kube --lane NAMESPACE/NAME` as they are.\n";

// lanekeeper's flags that take a value as the next word (so that it is not taken for NAME).
constexpr std::array<std::string_view, 7> kFlagsWithValues = {
    "--controller", "--waiting-threshold", "--wedge-time", "--log-level",
    "--log-format", "--redis",             "--queue"};

Status Usage(const std::string& why) {
  return Status::InvalidArgument("kubectl lanekeeper: " + why +
                                 " (see kubectl lanekeeper --help)");
}

// "--flag=value" or "--flag value" (and -nNAMESPACE, as kubectl takes it): taken and value
// set when args[i] is one of names; i advances past a value taken from the next word.
Status TakeFlag(const std::vector<std::string>& args, size_t& i,
                std::initializer_list<std::string_view> names, bool& taken, std::string& value) {
  const std::string& arg = args[i];
  taken = false;
  for (std::string_view name : names) {
    if (arg == name) {
      if (i + 1 >= args.size()) return Usage(std::string(name) + " needs a value");
      value = args[++i];
      taken = true;
    } else if (arg.starts_with(std::string(name) + "=")) {
      value = arg.substr(name.size() + 1);
      taken = true;
    } else if (name == "-n" && arg.size() > 2 && arg.starts_with("-n")) {
      value = arg.substr(2);
      taken = true;
    }
    if (taken) return Status::OK();
  }
  return Status::OK();
}

// A Lane's name as kubectl users write it: NAME or TYPE/NAME with TYPE lane(s)[.lanekeeper.dev].
StatusOr<std::string> LaneName(std::string word) {
  if (size_t slash = word.find('/'); slash != std::string::npos) {
    std::string type = word.substr(0, slash);
    if (type != "lane" && type != "lanes" && type != "lane.lanekeeper.dev" &&
        type != "lanes.lanekeeper.dev" && type != "lk") {
      return Usage("doctor: '" + word + "' is not a Lane: write NAME or lane/NAME");
    }
    word = word.substr(slash + 1);
  }
  if (word.empty() || word.find('/') != std::string::npos) {
    return Usage("doctor: '" + word + "' is not a Lane's name");
  }
  return word;
}

StatusOr<PluginCommand> Doctor(const std::vector<std::string>& args,
                               const ContextNamespace& context_namespace) {
  std::string name, ns, kubeconfig, context;
  bool ns_given = false;
  std::vector<std::string> rest;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    bool taken = false;
    LK_RETURN_IF_ERROR(TakeFlag(args, i, {"-n", "--namespace"}, taken, ns));
    ns_given = ns_given || taken;
    if (taken) continue;
    LK_RETURN_IF_ERROR(TakeFlag(args, i, {"--kubeconfig"}, taken, kubeconfig));
    if (taken) continue;
    LK_RETURN_IF_ERROR(TakeFlag(args, i, {"--context"}, taken, context));
    if (taken) continue;
    if (arg == "-A" || arg == "--all-namespaces") {
      return Usage("doctor checks one Lane: kubectl lanekeeper doctor NAME [-n NAMESPACE]");
    }
    if (arg.starts_with("-")) {
      rest.push_back(arg);
      bool takes_value = false;
      for (std::string_view f : kFlagsWithValues) takes_value = takes_value || arg == f;
      if (takes_value && i + 1 < args.size()) rest.push_back(args[++i]);
      continue;
    }
    if (!name.empty()) {
      return Usage("doctor: one Lane at a time, got '" + name + "' and '" + arg + "'");
    }
    auto lane = LaneName(arg);
    if (!lane.ok()) return lane.status();
    name = *lane;
  }
  if (name.empty()) return Usage("doctor: name a Lane: kubectl lanekeeper doctor NAME [-n NAMESPACE]");
  if (ns_given && ns.empty()) return Usage("-n needs a namespace");
  if (!ns_given) {
    auto from_context = context_namespace(kubeconfig, context);
    if (!from_context.ok()) {
      return Usage("cannot tell the Lane's namespace: " + from_context.status().message() +
                   "; name it with -n");
    }
    ns = from_context->empty() ? "default" : *from_context;
  }
  PluginCommand out;
  out.args = {"doctor", "--kube", "--lane", ns + "/" + name};
  if (!kubeconfig.empty()) out.args.insert(out.args.end(), {"--kubeconfig", kubeconfig});
  if (!context.empty()) out.args.insert(out.args.end(), {"--context", context});
  out.args.insert(out.args.end(), rest.begin(), rest.end());
  return out;
}

}  // namespace kubectl_plugin

bool RunsAsKubectlPlugin(std::string_view argv0) {
  size_t slash = argv0.rfind('/');
  return argv0.substr(slash == std::string_view::npos ? 0 : slash + 1) == kKubectlPluginName;
}

StatusOr<std::string> KubeconfigNamespace(const std::string& kubeconfig, const std::string& context) {
  auto config = kube::LoadKubeConfig(kubeconfig, context);
  if (!config.ok()) return config.status();
  return config->ns;
}

StatusOr<PluginCommand> TranslateKubectlPluginArgs(const std::vector<std::string>& args,
                                                   const ContextNamespace& context_namespace) {
  for (const std::string& arg : args) {
    if (arg == "-h" || arg == "--help") return PluginCommand{{}, std::string(kubectl_plugin::kUsage)};
  }
  if (args.empty()) return PluginCommand{{}, std::string(kubectl_plugin::kUsage)};
  if (args[0] == "--version" || args[0] == "version") return PluginCommand{{"--version"}, ""};
  if (args[0] == "doctor") return kubectl_plugin::Doctor(args, context_namespace);
  return kubectl_plugin::Usage("unknown command '" + args[0] + "'; expected doctor");
}

}  // namespace lk::cmd
