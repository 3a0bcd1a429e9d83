//go:build !unix

package fanoutbench

import (
	"errors"
	"time"
)

func raiseFileLimit() (soft, hard uint64, err error) {
	return 0, 0, errors.New("fanoutbench: file limits are only managed on Unix")
}

func cpuTime() time.Duration { return 0 }

func rssBytes() uint64 { return 0 }

func machineBusy() time.Duration { return 0 }
