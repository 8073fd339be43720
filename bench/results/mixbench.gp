# gnuplot bench/results/mixbench.gp  (paths relative to where mixbench ran)
set terminal pngcairo size 900,600
set output 'bench/results/mixbench.png'
set title 'mixbench: one core; 3 talkers a room, the rest silent'
set xlabel 'participants per room'
set ylabel 'us per participant per tick'
set logscale xy
set grid
set key top right
set xtics (3, 5, 10, 20, 50)
plot 'bench/results/mixbench_rooms.dat' u 1:2 w lp t 'PCMU, 8 kHz mix', \
     '' u 1:3 w lp t 'PCMU, 16 kHz mix', \
     '' u 1:4 w lp t 'Opus, 16 kHz mix'
