package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSample is the CPU time (user + system) each process had used at one moment. Over a phase it
// says where the machine's CPU went per call or per purchase; on a machine shared with other work
// that is steadier than a rate, and it shows whether the processes were short of CPU.
type cpuSample struct {
	order, lifecycle, client time.Duration
}

func (a cpuSample) sub(b cpuSample) cpuSample {
	return cpuSample{order: a.order - b.order, lifecycle: a.lifecycle - b.lifecycle, client: a.client - b.client}
}

func (a cpuSample) total() time.Duration { return a.order + a.lifecycle + a.client }

// per divides each figure by n (calls or purchases).
func (a cpuSample) per(n int) cpuSample {
	if n == 0 {
		return cpuSample{}
	}
	return cpuSample{order: a.order / time.Duration(n), lifecycle: a.lifecycle / time.Duration(n), client: a.client / time.Duration(n)}
}

// sampleCPU reads the services' CPU time from /proc and this process's from getrusage.
func sampleCPU(orderPID, lifecyclePID int) cpuSample {
	return cpuSample{order: procCPU(orderPID), lifecycle: procCPU(lifecyclePID), client: selfCPU()}
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times; 100 on every Linux we run on.
const clockTicks = 100

func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; the fields after it are plain numbers.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64) // field 14 of the whole line
	stime, _ := strconv.ParseInt(fields[12], 10, 64) // field 15
	return time.Duration(utime+stime) * time.Second / clockTicks
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
