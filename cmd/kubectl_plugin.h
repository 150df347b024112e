// kubectl-lanekeeper: the lanekeeper binary run by kubectl as a plugin. kubectl runs the
// `kubectl-lanekeeper` it finds on PATH (a symlink to lanekeeper, as the image has) with the
// words after `kubectl lanekeeper`; main() sees that name in argv[0] and runs lanekeeper's own
// command line instead:
//
//   kubectl lanekeeper doctor NAME [-n NS] [--kubeconfig F] [--context C] [doctor flags]
//     -> lanekeeper doctor --kube --lane NS/NAME [--kubeconfig F] [--context C] [doctor flags]
//
// NAME may be written lane/NAME (kubectl's TYPE/NAME). NS is -n / --namespace, else the
// namespace of the kubeconfig context (kubectl's own rule: --kubeconfig, $KUBECONFIG or
// ~/.kube/config, and --context), else the pod's, in a pod. Owns only the translation;
// `doctor --kube` is the doctor command's. Pure functions (the namespace lookup reads the
// kubeconfig); thread-safe.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "worker/status.h"

namespace lk::cmd {

inline constexpr std::string_view kKubectlPluginName = "kubectl-lanekeeper";

// Whether argv0's basename is kubectl-lanekeeper.
bool RunsAsKubectlPlugin(std::string_view argv0);

// The namespace of a kubeconfig's context: (--kubeconfig or "", --context or "") -> namespace.
using ContextNamespace =
    std::function<StatusOr<std::string>(const std::string& kubeconfig, const std::string& context)>;
// The real one, by controller/kube/kube_config.h's LoadKubeConfig.
StatusOr<std::string> KubeconfigNamespace(const std::string& kubeconfig, const std::string& context);

struct PluginCommand {
  std::vector<std::string> args;  // lanekeeper's arguments, without argv[0]
  std::string usage;              // instead, for --help or no arguments: print it, exit 0
};

// The translation above. InvalidArgument, worded for a kubectl user ("kubectl lanekeeper:
// doctor: name a Lane: kubectl lanekeeper doctor NAME [-n NAMESPACE]"), when the words
// cannot be translated.
StatusOr<PluginCommand> TranslateKubectlPluginArgs(const std::vector<std::string>& args,
                                                   const ContextNamespace& context_namespace);

}  // namespace lk::cmd
