#include "proxy/reuseport_steering.hpp"

#include <linux/filter.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>

namespace pgvigil::proxy {

std::error_code steer_reuseport_group(int listening_fd, std::size_t index) {
  sock_filter return_index{BPF_RET | BPF_K, 0, 0, static_cast<std::uint32_t>(index)};
  sock_fprog program{1, &return_index};
  if (::setsockopt(listening_fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program) !=
      0) {
    return {errno, std::generic_category()};
  }
  return {};
}

}  // namespace pgvigil::proxy
