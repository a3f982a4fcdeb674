// A guest init that breaks the control protocol: it opens the control port
// the way zwrm-init does, sends a frame header that announces a 1 MiB
// payload (the limit is 64 KiB), and then waits forever. The supervisor
// must end the run on the header alone, without waiting for the payload or
// for its boot timeout.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>

namespace {

constexpr const char* kControlPortName = "zwrm.control";

// Returns true when /sys/class/virtio-ports/<port>/name is the control
// port's name.
bool is_control_port(const char* port) {
  char path[512];
  std::snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", port);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char name[64] = {};
  const ssize_t count = ::read(fd, name, sizeof name - 1);
  ::close(fd);
  if (count <= 0) return false;
  name[std::strcspn(name, "\n")] = '\0';
  return std::strcmp(name, kControlPortName) == 0;
}

int open_control_port() {
  DIR* directory = ::opendir("/sys/class/virtio-ports");
  if (directory == nullptr) return -1;
  int fd = -1;
  while (dirent* entry = ::readdir(directory)) {
    if (entry->d_name[0] == '.' || !is_control_port(entry->d_name)) continue;
    char device[512];
    std::snprintf(device, sizeof device, "/dev/%s", entry->d_name);
    fd = ::open(device, O_RDWR | O_CLOEXEC);
    break;
  }
  ::closedir(directory);
  return fd;
}

// PID 1 must never exit, or the kernel panics and the test would see a
// guest crash instead of the protocol violation.
[[noreturn]] void wait_forever() {
  for (;;) ::pause();
}

}  // namespace

int main() {
  ::mkdir("/dev", 0755);
  ::mkdir("/sys", 0755);
  ::mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  ::mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);

  // Virtio devices may appear a little after init starts, so wait up to 5 s.
  int port = -1;
  for (int attempt = 0; attempt < 500 && port < 0; ++attempt) {
    port = open_control_port();
    if (port < 0) ::usleep(10'000);
  }
  if (port < 0) {
    std::fprintf(stderr, "bad_init: no virtio-serial port named %s\n", kControlPortName);
    wait_forever();
  }

  // Header, little-endian: payload length 0x00100000 (1 MiB), stream 0,
  // type 1 (hello) and three reserved zero bytes.
  const std::uint8_t header[12] = {0x00, 0x00, 0x10, 0x00, 0, 0, 0, 0, 1, 0, 0, 0};
  if (::write(port, header, sizeof header) != static_cast<ssize_t>(sizeof header)) {
    std::fprintf(stderr, "bad_init: cannot write to the control port\n");
  }
  wait_forever();
}
